//! sprig's crypto functions: `bcrypt`, `htpasswd`, `derivePassword`, `encryptAES`,
//! `decryptAES`, `genPrivateKey`, `buildCustomCert` and the certificate generators. Salted and
//! random outputs are checked by what they must satisfy (a bcrypt hash verifies, a
//! certificate parses, names its subject and SANs, is valid for its days and verifies against
//! its issuer), fixed ones against sprig's tests and against what sprig printed for the same
//! template (sprig as ESO v2.9.0 vendors it, on Go 1.26).

use std::collections::BTreeMap;
use std::time::Duration;

use ed25519_dalek::Verifier as _;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
use secret_sync_template::{Engine, ExceededLimit, Limits, TemplateError};
use sha2::{Digest as _, Sha256};
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, SubjectAltName, SubjectKeyIdentifier,
};

/// Key generation and scrypt run unoptimised in debug builds: the tests give them time.
fn engine() -> Engine {
    Engine::new(Limits {
        timeout: Duration::from_secs(120),
        ..Limits::default()
    })
}

fn render(text: &str) -> String {
    engine()
        .render_string("t", text, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn render_with(text: &str, data: &[(&str, &str)]) -> String {
    let data: BTreeMap<String, Vec<u8>> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    engine()
        .render_string("t", text, &data)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn fails(text: &str) -> String {
    engine()
        .render_string("t", text, &BTreeMap::new())
        .expect_err(text)
        .to_string()
}

fn verifies(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[test]
fn bcrypt_hashes_verify_as_go_writes_them() {
    // sprig TestBcrypt.
    let hash = render(r#"{{ "abc" | bcrypt }}"#);
    assert!(hash.starts_with("$2a$10$") && hash.len() == 60, "{hash}");
    assert!(verifies("abc", &hash) && !verifies("abd", &hash));
    // A hash sprig made reads the same way.
    assert!(verifies(
        "abc",
        "$2a$10$9omkniHBK0b.zuvtOwITP.rbA3X1upzfYb3Q.DnP26HoCh21aN6tS"
    ));
    // x/crypto/bcrypt refuses what it would truncate; sprig returns the message.
    assert_eq!(
        render(r#"{{ bcrypt (repeat 73 "a") }}"#),
        "failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
    );
}

#[test]
fn htpasswd_lines_verify_as_sprig_tests_them() {
    // sprig TestHtpasswd.
    for (user, password, algorithm) in [
        ("myUser", "myPassword", "bcrypt"),
        (
            "special'o79Cv_*qFe,)<user",
            "special<j7+3p#6-.Jx2U:m8G;kGypassword",
            "bcrypt",
        ),
        ("myDefaultUser", "defaulthashpass", ""),
    ] {
        let out = render_with(
            "{{ htpasswd .u .p .a }}",
            &[("u", user), ("p", password), ("a", algorithm)],
        );
        let (got_user, hash) = out.split_once(':').unwrap_or_default();
        assert_eq!(got_user, user);
        assert!(verifies(password, hash), "{out}");
    }
    // `{SHA}` and base64 of SHA-1, as sprig printed it.
    assert_eq!(
        render(r#"{{ htpasswd "mySahUser" "myShaPassword" "sha" }}"#),
        "mySahUser:{SHA}2C1bZDUdiuMgec/S9ra/kXN8r6E="
    );
    assert_eq!(
        render(r#"{{ htpasswd "wrongus:er" "doesn'tmatter" "bcrypt" }}"#),
        "invalid username: wrongus:er"
    );
    // sprig's htpasswd takes the algorithm: two arguments are an arity error in Go.
    assert!(fails(r#"{{ htpasswd "u" "p" }}"#).contains("want 3 got 2"));
}

#[test]
fn the_templating_guides_htpasswd_example_renders() {
    // ESO docs/snippets/template-v2-literal-example.yaml.
    let template = r#"{{- $creds := list }}
{{- range $user, $pw := . }}
  {{- $creds = append $creds (printf "%s" (htpasswd $user $pw "bcrypt")) }}
{{- end }}
auth: {{ $creds | join "\n" | quote }}"#;
    let out = render_with(template, &[("user1", "password1"), ("user2", "password2")]);
    let quoted = out
        .strip_prefix("\nauth: ")
        .unwrap_or_else(|| panic!("{out}"));
    let lines: String = serde_json::from_str(quoted).unwrap_or_else(|e| panic!("{e}: {out}"));
    let lines: Vec<&str> = lines.split('\n').collect();
    assert_eq!(lines.len(), 2);
    for (line, (user, password)) in lines
        .iter()
        .zip([("user1", "password1"), ("user2", "password2")])
    {
        let (got_user, hash) = line.split_once(':').unwrap_or_default();
        assert_eq!(got_user, user);
        assert!(verifies(password, hash), "{line}");
    }
}

#[test]
fn derive_password_matches_sprigs_vectors() {
    // sprig TestDerivePassword, in one render: one scrypt for the seven.
    let out = render(
        r#"{{derivePassword 1 "long" "password" "user" "example.com"}}
{{derivePassword 2 "long" "password" "user" "example.com"}}
{{derivePassword 1 "maximum" "password" "user" "example.com"}}
{{derivePassword 1 "medium" "password" "user" "example.com"}}
{{derivePassword 1 "basic" "password" "user" "example.com"}}
{{derivePassword 1 "short" "password" "user" "example.com"}}
{{derivePassword 1 "pin" "password" "user" "example.com"}}
{{derivePassword 1 "nope" "password" "user" "example.com"}}"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "ZedaFaxcZaso9*",
            "Fovi2@JifpTupx",
            "pf4zS1LjCg&LjhsZ7T2~",
            "ZedJuz8$",
            "pIS54PLs",
            "Zed5",
            "6685",
            "cannot find password template nope",
        ]
    );
    // The counter is a uint32.
    let e = fails(r#"{{derivePassword -1 "long" "password" "user" "example.com"}}"#);
    assert!(e.ends_with("expected unsigned integer; found -1"), "{e}");
    // Non-ASCII names are scoped by their byte length (as sprig printed it).
    assert_eq!(
        render(r#"{{derivePassword 7 "long" "pässwörd" "üser" "sïte.example"}}"#),
        "ZezeRaci1;Qecn"
    );
}

#[test]
fn aes_round_trips_and_reads_sprigs_ciphertexts() {
    // sprig TestEncryptDecryptAES.
    assert_eq!(
        render(r#"{{ "plaintext" | encryptAES "secretkey" | decryptAES "secretkey" }}"#),
        "plaintext"
    );
    // Ciphertexts sprig made: a short key, a key past 32 bytes (cut), a block-sized
    // plaintext (a whole block of padding), an empty key and non-ASCII text.
    for (key, ciphertext, plain) in [
        (
            "secretkey",
            "RxmNBQGiLnOkPPC+wRqMXcR4GGfGK6TEEouq3jtLBiA=",
            "plaintext",
        ),
        (
            "a-key-longer-than-thirty-two-bytes-is-cut",
            "bF7/qok0CjqgIQ9LGn+yrgIp/8LNIQqS3oa8dd9N3uerpDZie0lOroN7kYR2e5do",
            "sixteen byte msg",
        ),
        (
            "",
            "FRs/sksQUV0lrocTV1OU03K8UIp5qbpZmYOFst4fr3o=",
            "héllo wörld",
        ),
    ] {
        assert_eq!(
            render_with("{{ decryptAES .k .c }}", &[("k", key), ("c", ciphertext)]),
            plain
        );
    }
    // The IV is random; the length is IV, data and padding.
    let a = render(r#"{{ encryptAES "k" "x" }}"#);
    assert_ne!(a, render(r#"{{ encryptAES "k" "x" }}"#));
    assert_eq!(a.len(), 44);
    assert_eq!(
        render(r#"{{ encryptAES "k" (repeat 16 "x") | len }}"#),
        "64"
    );
    assert_eq!(
        render(r#"{{ encryptAES "k" "" }}|{{ decryptAES "k" "" }}"#),
        "|"
    );
}

#[test]
fn aes_fails_where_go_panics() {
    for (ciphertext, message) in [
        (
            "YWI=",
            "runtime error: slice bounds out of range [:16] with capacity 3",
        ),
        ("!!!", "illegal base64 data at input byte 0"),
        (
            "AAAAAAAAAAAAAAAAAAAAAA==",
            "runtime error: index out of range [-1]",
        ),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "crypto/cipher: input not full blocks",
        ),
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "runtime error: slice bounds out of range [:-3]",
        ),
    ] {
        let e = fails(&format!(r#"{{{{ decryptAES "k" "{ciphertext}" }}}}"#));
        assert!(
            e.ends_with(&format!("error calling decryptAES: {message}")),
            "{e}"
        );
    }
}

/// The first PEM block of `text`: its label and DER.
fn pem_block(text: &str) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let begin = text
        .find("-----BEGIN ")
        .unwrap_or_else(|| panic!("no PEM: {text}"));
    let rest = &text[begin + 11..];
    let (label, rest) = rest.split_once("-----\n").unwrap_or_default();
    let (body, _) = rest.split_once("-----END ").unwrap_or_default();
    let body: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_else(|e| panic!("{e}"));
    (label.to_owned(), der)
}

#[test]
fn private_keys_are_written_as_sprig_writes_them() {
    // sprig TestGenPrivateKey.
    let rsa = render(r#"{{ genPrivateKey "rsa" }}"#);
    let (label, der) = pem_block(&rsa);
    assert_eq!(label, "RSA PRIVATE KEY");
    let key = rsa::PrivateKey::from_pkcs1_der(&der).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rsa::traits::PublicKeyParts::size(&key), 256, "2048 bits");
    let (label, _) = pem_block(&render(r#"{{ genPrivateKey "" }}"#));
    assert_eq!(label, "RSA PRIVATE KEY");

    let (label, der) = pem_block(&render(r#"{{ genPrivateKey "ecdsa" }}"#));
    assert_eq!(label, "EC PRIVATE KEY");
    let ec = sec1::EcPrivateKey::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ec.private_key.len(), 32);
    assert_eq!(
        ec.parameters
            .and_then(|p| p.named_curve())
            .map(|o| o.to_string()),
        Some("1.2.840.10045.3.1.7".to_owned()),
        "x509.MarshalECPrivateKey names the curve"
    );
    assert!(ec.public_key.is_some());

    let (label, der) = pem_block(&render(r#"{{ genPrivateKey "ed25519" }}"#));
    assert_eq!(label, "PRIVATE KEY");
    let info = pkcs8::PrivateKeyInfoRef::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.algorithm.oid.to_string(), "1.3.101.112");

    assert_eq!(render(r#"{{ genPrivateKey "bad" }}"#), "Unknown type bad");
    assert!(!render(r#"{{ genPrivateKey "rsa" | b64enc }}"#).is_empty());
    // Go generates DSA keys but signs no certificate with them; they are refused here.
    assert!(fails(r#"{{ genPrivateKey "dsa" }}"#).contains("dsa keys are not supported"));
}

/// A PEM certificate, parsed, with the bytes its signature covers.
struct Cert {
    cert: x509_cert::Certificate,
    tbs: Vec<u8>,
}

impl Cert {
    fn parse(text: &str) -> Self {
        let (label, der) = pem_block(text);
        assert_eq!(label, "CERTIFICATE");
        let cert = x509_cert::Certificate::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
        let tbs = cert
            .tbs_certificate()
            .to_der()
            .unwrap_or_else(|e| panic!("{e}"));
        Self { cert, tbs }
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    fn issuer(&self) -> String {
        self.cert.tbs_certificate().issuer().to_string()
    }

    fn is_ca(&self) -> bool {
        let ext = self
            .cert
            .tbs_certificate()
            .get_extension::<BasicConstraints>();
        let (critical, bc) = ext
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("basic constraints"));
        assert!(critical);
        bc.ca
    }

    fn days(&self) -> u64 {
        let v = self.cert.tbs_certificate().validity();
        (v.not_after.to_unix_duration() - v.not_before.to_unix_duration()).as_secs() / 86_400
    }

    fn sans(&self) -> Vec<String> {
        let ext = self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectAltName>();
        let Some((_, names)) = ext.ok().flatten() else {
            return Vec::new();
        };
        names
            .0
            .into_iter()
            .map(|name| match name {
                GeneralName::DnsName(d) => format!("dns:{d}"),
                GeneralName::IpAddress(ip) => format!("ip:{:?}", ip.as_bytes()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn ski(&self) -> Option<Vec<u8>> {
        let ext = self
            .cert
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>();
        ext.ok().flatten().map(|(_, k)| k.0.as_bytes().to_vec())
    }

    fn aki(&self) -> Option<Vec<u8>> {
        let ext = self
            .cert
            .tbs_certificate()
            .get_extension::<AuthorityKeyIdentifier>();
        ext.ok()
            .flatten()
            .and_then(|(_, k)| k.key_identifier)
            .map(|k| k.as_bytes().to_vec())
    }

    fn public_key(&self) -> (String, Vec<u8>) {
        let spki = self.cert.tbs_certificate().subject_public_key_info();
        (
            spki.algorithm.oid.to_string(),
            spki.subject_public_key.raw_bytes().to_vec(),
        )
    }

    /// Whether `issuer`'s key made this certificate's signature.
    fn signed_by(&self, issuer: &Cert) -> bool {
        let sig = self.cert.signature().raw_bytes();
        let (algorithm, key) = issuer.public_key();
        match algorithm.as_str() {
            "1.2.840.113549.1.1.1" => {
                let Ok(key) = rsa::PublicKey::from_pkcs1_der(&key) else {
                    return false;
                };
                let digest_info = [
                    &[
                        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                        0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                    ][..],
                    &Sha256::digest(&self.tbs),
                ]
                .concat();
                key.verify(rsa::Pkcs1v15Sign::new_unprefixed(), &digest_info, sig)
                    .is_ok()
            }
            "1.2.840.10045.2.1" => {
                let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key) else {
                    return false;
                };
                let Ok(sig) = p256::ecdsa::DerSignature::from_bytes(sig) else {
                    return false;
                };
                p256::ecdsa::signature::Verifier::verify(&key, &self.tbs, &sig).is_ok()
            }
            "1.3.101.112" => {
                let (Ok(key), Ok(sig)) = (
                    <[u8; 32]>::try_from(key.as_slice()),
                    <[u8; 64]>::try_from(sig),
                ) else {
                    return false;
                };
                ed25519_dalek::VerifyingKey::from_bytes(&key).is_ok_and(|key| {
                    key.verify(&self.tbs, &ed25519_dalek::Signature::from_bytes(&sig))
                        .is_ok()
                })
            }
            other => panic!("unexpected key algorithm {other}"),
        }
    }
}

/// `$x.Cert` and `$x.Key` of a rendered `dict "Cert" .. "Key" ..` (sprig's certificate).
fn cert_and_key(json: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (field("Cert"), field("Key"))
}

#[test]
fn gen_ca_makes_a_self_signed_ca() {
    // sprig testGenCA, with genCA and with genCAWithKey over fast key types.
    for expr in [
        "genCA",
        r#"genPrivateKey "ecdsa" | genCAWithKey"#,
        r#"genPrivateKey "ed25519" | genCAWithKey"#,
    ] {
        let (cert, key) = cert_and_key(&render(&format!(
            r#"{{{{ {expr} "foo-ca" 365 | toJson }}}}"#
        )));
        let ca = Cert::parse(&cert);
        assert_eq!(ca.subject(), "CN=foo-ca", "{expr}");
        assert_eq!(ca.issuer(), "CN=foo-ca");
        assert!(ca.is_ca());
        assert_eq!(ca.days(), 365);
        assert!(ca.signed_by(&ca), "{expr}");
        // Go 1.25+: the subject key id is the leftmost 160 bits of SHA-256 of the key.
        let (_, public) = ca.public_key();
        assert_eq!(ca.ski(), Some(Sha256::digest(&public)[..20].to_vec()));
        assert_eq!(ca.aki(), None);
        assert!(ca.sans().is_empty());
        assert!(key.contains("PRIVATE KEY-----"), "{key}");
    }
}

#[test]
fn self_signed_certificates_carry_their_names() {
    // sprig testGenSelfSignedCert.
    for expr in [
        "genSelfSignedCert",
        r#"genPrivateKey "ecdsa" | genSelfSignedCertWithKey"#,
        r#"genPrivateKey "ed25519" | genSelfSignedCertWithKey"#,
    ] {
        let (cert, _) = cert_and_key(&render(&format!(
            r#"{{{{ {expr} "foo.com" (list "10.0.0.1" "10.0.0.2") (list "bar.com" "bat.com") 365 | toJson }}}}"#
        )));
        let c = Cert::parse(&cert);
        assert_eq!(c.subject(), "CN=foo.com");
        assert!(!c.is_ca());
        assert_eq!(c.days(), 365);
        assert_eq!(
            c.sans(),
            [
                "dns:bar.com",
                "dns:bat.com",
                "ip:[10, 0, 0, 1]",
                "ip:[10, 0, 0, 2]"
            ]
        );
        assert!(c.signed_by(&c), "{expr}");
        assert_eq!(c.ski(), None);
    }
}

#[test]
fn signed_certificates_chain_to_their_ca() {
    // sprig testGenSignedCert, for every CA and leaf key type sprig tests.
    let cas = [
        "genCA",
        r#"genPrivateKey "ecdsa" | genCAWithKey"#,
        r#"genPrivateKey "ed25519" | genCAWithKey"#,
    ];
    let leaves = [
        "genSignedCert",
        r#"genPrivateKey "ecdsa" | genSignedCertWithKey"#,
        r#"genPrivateKey "ed25519" | genSignedCertWithKey"#,
    ];
    for ca_expr in cas {
        for leaf_expr in leaves {
            let out = render(&format!(
                r#"{{{{- $ca := {ca_expr} "foo" 365 }}}}
{{{{- $cert := {leaf_expr} "foo.com" (list "10.0.0.1" "::ffff:10.0.0.2" "2001:db8::1") (list "bar.com" "bat.com") 30 $ca }}}}
{{{{- dict "ca" $ca "cert" $cert | toJson }}}}"#
            ));
            let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}"));
            let ca = Cert::parse(v["ca"]["Cert"].as_str().unwrap_or_default());
            let leaf = Cert::parse(v["cert"]["Cert"].as_str().unwrap_or_default());
            assert_eq!(leaf.subject(), "CN=foo.com");
            assert_eq!(leaf.issuer(), ca.subject());
            assert!(!leaf.is_ca());
            assert_eq!(leaf.days(), 30);
            // IPv4-mapped addresses are written in 4 bytes, as Go does.
            assert_eq!(
                leaf.sans(),
                [
                    "dns:bar.com",
                    "dns:bat.com",
                    "ip:[10, 0, 0, 1]",
                    "ip:[10, 0, 0, 2]",
                    "ip:[32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"
                ]
            );
            assert_eq!(leaf.aki(), ca.ski());
            assert!(leaf.signed_by(&ca), "{ca_expr} / {leaf_expr}");
            assert!(!leaf.signed_by(&leaf));
        }
    }
}

#[test]
fn signing_refuses_a_ca_key_that_is_not_the_cas() {
    let e = fails(
        r#"{{ $a := genPrivateKey "ed25519" | genCAWithKey "a" 1 }}{{ $b := genPrivateKey "ed25519" | genCAWithKey "b" 1 }}{{ genSignedCert "x" nil nil 1 (dict "Cert" $a.Cert "Key" $b.Key) }}"#,
    );
    assert!(
        e.ends_with(
            "error creating certificate: x509: provided PrivateKey doesn't match parent's PublicKey"
        ),
        "{e}"
    );
    let e = fails(r#"{{ genSelfSignedCert "x" (list "1.2.3.999") nil 1 }}"#);
    assert!(e.ends_with("error parsing ip: not an IP address"), "{e}");
    let e = fails(r#"{{ genCAWithKey "x" 1 "nope" }}"#);
    assert!(
        e.ends_with("parsing private key: no PEM data in input"),
        "{e}"
    );
    // Go names the PEM block's type; it may come from data, so it is left out.
    let e = fails(
        r#"{{ genCAWithKey "x" 1 "-----BEGIN SECRET-LABEL-----\nAAAA\n-----END SECRET-LABEL-----\n" }}"#,
    );
    assert!(
        e.ends_with("parsing private key: no private key data in PEM block"),
        "{e}"
    );
}

#[test]
fn empty_subjects_make_the_sans_critical() {
    let (cert, _) = cert_and_key(&render(
        r#"{{ genPrivateKey "ed25519" | genSelfSignedCertWithKey "" nil (list "x.example") 1 | toJson }}"#,
    ));
    let c = Cert::parse(&cert);
    assert_eq!(c.subject(), "");
    let ext = c.cert.tbs_certificate().get_extension::<SubjectAltName>();
    assert!(matches!(ext, Ok(Some((true, _)))));
}

#[test]
fn build_custom_cert_returns_what_it_was_given() {
    // sprig TestBuildCustomCert.
    let out = render(
        r#"{{- $ca := genPrivateKey "ecdsa" | genCAWithKey "example.com" 365 }}
{{- $custom := buildCustomCert ($ca.Cert | b64enc) ($ca.Key | b64enc) }}
{{- eq $custom.Cert $ca.Cert }} {{ eq $custom.Key $ca.Key }}"#,
    );
    assert_eq!(out, "true true");
    let e = fails(
        r#"{{ $ca := genPrivateKey "ecdsa" | genCAWithKey "x" 1 }}{{ buildCustomCert ("fail" | b64enc) ($ca.Key | b64enc) }}"#,
    );
    assert!(
        e.ends_with("error calling buildCustomCert: unable to decode certificate"),
        "{e}"
    );
}

#[test]
fn key_generation_stops_at_the_time_limit() {
    let engine = Engine::new(Limits {
        timeout: Duration::from_millis(1),
        ..Limits::default()
    });
    let err = engine
        .render_string("t", r#"{{ genCA "x" 1 }}"#, &BTreeMap::new())
        .expect_err("a 2048-bit key takes more than a millisecond");
    assert!(
        matches!(
            err,
            TemplateError::Limit {
                limit: ExceededLimit::Time(_),
                ..
            }
        ),
        "{err:?}"
    );
}
