//! A private OpenLDAP `slapd` for tests of LDAP logins (Vault's `ldap` auth method).
//!
//! [`Slapd::start`] writes a `slapd.conf` (core, cosine and inetorgperson schemas from
//! `/etc/ldap/schema`, one mdb database for [`SUFFIX`] with the root DN [`ROOT_DN`]) into a fresh
//! temporary directory, loads the [`Directory`] offline with `slapadd`, starts
//! `slapd -d stats -h ldap://127.0.0.1:<free port>/` in the foreground and waits until the root
//! DN can bind. Dropping the guard kills slapd and removes the directory.
//!
//! slapd, slapadd and slappasswd come from Debian's `slapd` package, ldapwhoami from
//! `ldap-utils`; `.ci/run` installs both. A missing tool is an error, never a skipped test.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

/// The directory's suffix (base DN).
pub const SUFFIX: &str = "dc=example,dc=org";
/// The root DN; it binds with [`ROOT_PASSWORD`] and is not subject to access control.
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
/// The root DN's password.
pub const ROOT_PASSWORD: &str = "admin-secret-for-tests";
/// Where users live: `uid=<uid>,ou=users,dc=example,dc=org`.
pub const USERS_DN: &str = "ou=users,dc=example,dc=org";
/// Where groups live: `cn=<cn>,ou=groups,dc=example,dc=org` (groupOfNames).
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=org";

const SCHEMAS: [&str; 3] = ["core", "cosine", "inetorgperson"];
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";
const INSTALL_HINT: &str = "install slapd and ldap-utils (.ci/run does: \
     `apt-get install --no-install-recommends slapd ldap-utils`)";

/// The entries loaded before slapd starts: inetOrgPerson users with a (salted SHA) password and
/// groupOfNames groups listing users by DN.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    users: Vec<(String, String)>,
    groups: Vec<(String, Vec<String>)>,
}

impl Directory {
    /// Adds `uid=<uid>,ou=users,…` with `userPassword` set to a hash of `password`.
    pub fn user(mut self, uid: &str, password: &str) -> Self {
        self.users.push((uid.to_owned(), password.to_owned()));
        self
    }

    /// Adds `cn=<cn>,ou=groups,…` with each of `members` (uids) as a `member`.
    pub fn group(mut self, cn: &str, members: &[&str]) -> Self {
        self.groups.push((
            cn.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        ));
        self
    }
}

/// The DN of the user `uid`.
pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},{USERS_DN}")
}

/// The DN of the group `cn`.
pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},{GROUPS_DN}")
}

/// A running private slapd; killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct Slapd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Slapd {
    /// Starts slapd with `directory` loaded and waits until it answers a bind. Blocking: call
    /// it from `spawn_blocking` in async tests.
    pub fn start(directory: &Directory) -> anyhow::Result<Slapd> {
        let slapd = tool("slapd")?;
        let slapadd = tool("slapadd")?;
        let slappasswd = tool("slappasswd")?;
        let ldapwhoami = tool("ldapwhoami")?;
        for schema in SCHEMAS {
            let path = Path::new(SCHEMA_DIR).join(format!("{schema}.schema"));
            ensure!(
                path.exists(),
                "{} is missing: {INSTALL_HINT}",
                path.display()
            );
        }

        let dir = std::env::temp_dir().join(crate::unique_name("slapd"));
        std::fs::create_dir_all(dir.join("db"))
            .with_context(|| format!("creating {}", dir.display()))?;
        // From here on a failure removes the directory again.
        let mut pending = Pending(Some(dir.clone()));

        let conf = dir.join("slapd.conf");
        std::fs::write(&conf, slapd_conf(&dir, &hash(&slappasswd, ROOT_PASSWORD)?))
            .context("writing slapd.conf")?;
        let ldif = dir.join("directory.ldif");
        std::fs::write(&ldif, directory_ldif(directory, &slappasswd)?)
            .context("writing the LDIF")?;
        run(
            Command::new(&slapadd)
                .arg("-f")
                .arg(&conf)
                .arg("-l")
                .arg(&ldif),
            "slapadd",
        )?;

        // A port picked by binding :0 may be taken before slapd binds it; try a few.
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::fs::File::create(dir.join("slapd.log")).context("slapd log")?;
            let mut child = Command::new(&slapd)
                // Any -d keeps slapd in the foreground (a child we can kill); `stats` logs
                // connections, binds and searches to the log file for post-mortems.
                .args(["-d", "stats", "-h", &format!("ldap://127.0.0.1:{port}/")])
                .arg("-f")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("slapd log")?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", slapd.display()))?;
            match wait_ready(&mut child, port, &dir, &ldapwhoami) {
                Ok(()) => {
                    pending.0 = None;
                    return Ok(Slapd { child, port, dir });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("slapd did not start")))
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The port slapd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// slapd's log (`-d stats`: connections, binds and their results).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// The LDAP result code of each simple bind as `dn` so far, in order: 0 for success, 49 for
    /// invalid credentials. Read from the log, so it shows what the server itself decided. slapd
    /// writes a bind's RESULT line a moment after its BIND line (and the client may have its
    /// answer first), so this waits up to 2 s for every bind it has seen to have its result.
    pub fn binds(&self, dn: &str) -> Vec<u32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let (results, unanswered) = self.bind_results(dn);
            if unanswered == 0 || std::time::Instant::now() >= deadline {
                return results;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The results of the binds as `dn` in the log so far, and how many binds have no result yet.
    fn bind_results(&self, dn: &str) -> (Vec<u32>, usize) {
        let bind = format!(" BIND dn=\"{dn}\" method=128");
        let mut pending = std::collections::HashSet::new();
        let mut results = Vec::new();
        for line in self.log().lines() {
            // `<time> <thread> conn=N op=M <operation> …`
            let Some(at) = line.find("conn=") else {
                continue;
            };
            let rest = &line[at..];
            let mut words = rest.splitn(3, ' ');
            let (Some(conn), Some(op), Some(what)) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let key = (conn.to_owned(), op.to_owned());
            if line.ends_with(&bind) {
                pending.insert(key);
            } else if what.starts_with("RESULT tag=97 ") && pending.remove(&key) {
                let code = what
                    .split(' ')
                    .find_map(|w| w.strip_prefix("err="))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(u32::MAX);
                results.push(code);
            }
        }
        (results, pending.len())
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until slapd on `port` lets the root DN bind; its log in the error otherwise.
fn wait_ready(child: &mut Child, port: u16, dir: &Path, ldapwhoami: &Path) -> anyhow::Result<()> {
    let url = format!("ldap://127.0.0.1:{port}");
    let log = || std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().context("waiting for slapd")? {
            bail!(
                "slapd exited with {status} before answering on {url}; its log:\n{}",
                log()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Listening; the root DN binding proves the database and its password.
            let out = Command::new(ldapwhoami)
                .args(["-x", "-H", &url, "-D", ROOT_DN, "-w", ROOT_PASSWORD])
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {}", ldapwhoami.display()))?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "slapd on {url} refuses the root bind: {}; its log:\n{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    log()
                );
            }
        }
        if Instant::now() > deadline {
            bail!(
                "slapd did not listen on {url} within 15s; its log:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the directory unless disarmed (`.0 = None`).
struct Pending(Option<PathBuf>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn slapd_conf(dir: &Path, root_hash: &str) -> String {
    let mut conf = String::new();
    for schema in SCHEMAS {
        let _ = writeln!(conf, "include {SCHEMA_DIR}/{schema}.schema");
    }
    let dir = dir.display();
    let _ = write!(
        conf,
        "modulepath {MODULE_DIR}\n\
         moduleload back_mdb\n\
         pidfile {dir}/slapd.pid\n\
         argsfile {dir}/slapd.args\n\
         # Passwords: users may bind with theirs, nobody may read them.\n\
         access to attrs=userPassword by self write by anonymous auth by * none\n\
         access to * by * read\n\
         database mdb\n\
         maxsize 16777216\n\
         suffix \"{SUFFIX}\"\n\
         rootdn \"{ROOT_DN}\"\n\
         rootpw {root_hash}\n\
         directory {dir}/db\n\
         index objectClass eq\n\
         index uid,member eq\n"
    );
    conf
}

fn directory_ldif(directory: &Directory, slappasswd: &Path) -> anyhow::Result<String> {
    let simple = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n\
         o: Example\n\n\
         dn: {USERS_DN}\nobjectClass: organizationalUnit\nou: users\n\n\
         dn: {GROUPS_DN}\nobjectClass: organizationalUnit\nou: groups\n"
    );
    for (uid, password) in &directory.users {
        ensure!(
            simple(uid),
            "uid {uid:?}: use letters, digits, '-', '_', '.'"
        );
        let hashed = hash(slappasswd, password)?;
        let _ = write!(
            ldif,
            "\ndn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
             userPassword: {hashed}\n",
            user_dn(uid)
        );
    }
    for (cn, members) in &directory.groups {
        ensure!(
            simple(cn),
            "group {cn:?}: use letters, digits, '-', '_', '.'"
        );
        ensure!(
            !members.is_empty(),
            "group {cn}: groupOfNames needs a member"
        );
        let _ = write!(
            ldif,
            "\ndn: {}\nobjectClass: groupOfNames\ncn: {cn}\n",
            group_dn(cn)
        );
        for member in members {
            let _ = writeln!(ldif, "member: {}", user_dn(member));
        }
    }
    Ok(ldif)
}

/// `{SSHA}…` (salted SHA-1, slapd's default scheme) for `password`, from slappasswd.
fn hash(slappasswd: &Path, password: &str) -> anyhow::Result<String> {
    ensure!(
        !password.is_empty() && !password.contains('\n'),
        "test passwords must be one non-empty line"
    );
    let out = run(
        Command::new(slappasswd).args(["-h", "{SSHA}", "-s", password]),
        "slappasswd",
    )?;
    let hashed = out.trim().to_owned();
    ensure!(
        hashed.starts_with("{SSHA}"),
        "slappasswd printed no hash: {hashed:?}"
    );
    Ok(hashed)
}

/// Runs a command to completion and returns its stdout; its stderr in the error otherwise.
fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    ensure!(
        out.status.success(),
        "{what} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The path of an OpenLDAP tool: on PATH, or in the sbin directories a non-root PATH lacks.
fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{name} not found on PATH or in /usr/sbin: {INSTALL_HINT}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("picking a free port")?
        .port())
}
