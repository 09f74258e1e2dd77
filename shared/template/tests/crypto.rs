//! Golden tests for ESO's certificate, PKCS#12, JWK and RSA functions, with ESO's own vectors
//! (external-secrets runtime/template/v2: template_test.go `TestExecute` and
//! `TestPkcs12certPass`, pem_test.go `TestFilterCertChain` and `TestCertSANs`,
//! pkcs12_test.go `TestPemToPkcs12` and `TestFullPemToPkcs12`). The fixtures in
//! tests/fixtures/eso are ESO's test constants and `_testdata` files, byte for byte.

use std::collections::BTreeMap;

use secret_sync_template::{Engine, Limits, TemplateError};

const PKCS12_NOPASS: &str = include_str!("fixtures/eso/pkcs12-nopass.b64");
const PKCS12_PASS_123456: &str = include_str!("fixtures/eso/pkcs12-withpass-123456.b64");
const PKCS12_KEY: &str = include_str!("fixtures/eso/pkcs12-key.pem");
const PKCS12_CERT: &str = include_str!("fixtures/eso/pkcs12-cert.pem");
const GO_PKCS12_MODERN: &str = include_str!("fixtures/eso/go-pkcs12-modern-password.b64");
const GO_PKCS12_MODERN_CHAIN: &str =
    include_str!("fixtures/eso/go-pkcs12-modern-chain-password.b64");
const LEAF: &str = include_str!("fixtures/eso/foo.crt");
const INTERMEDIATE: &str = include_str!("fixtures/eso/intermediate-ca.crt");
const ROOT: &str = include_str!("fixtures/eso/root-ca.crt");
const ROOT_KEY: &str = include_str!("fixtures/eso/root-ca.key");
const DISJUNCT_ROOT: &str = include_str!("fixtures/eso/disjunct-root-ca.crt");
const SANS: &str = include_str!("fixtures/eso/sans.crt");
const RSA_PKCS8: &str = include_str!("fixtures/eso/rsa-oaep-pkcs8.key");
const RSA_PKCS1: &str = include_str!("fixtures/eso/rsa-oaep-pkcs1.key");
const RSA_SHA1_PKCS8: &str = include_str!("fixtures/eso/rsa-oaep-sha1-pkcs8.b64");
const RSA_SHA256_PKCS1: &str = include_str!("fixtures/eso/rsa-oaep-sha256-pkcs1.b64");

// template_test.go constants.
const JWK_PUB_RSA: &str = r#"{"kid":"ex","kty":"RSA","key_ops":["sign","verify","wrapKey","unwrapKey","encrypt","decrypt"],"n":"p2VQo8qCfWAZmdWBVaYuYb-a-tWWm78K6Sr9poCvNcmv8rUPSLACxitQWR8gZaSH1DklVkqz-Ed8Cdlf8lkDg4Ex5tkB64jRdC1Uvn4CDpOH6cp-N2s8hTFLqy9_YaDmyQS7HiqthOi9oVjil1VMeWfaAbClGtFt6UnKD0Vb_DvLoWYQSqlhgBArFJi966b4E1pOq5Ad02K8pHBDThlIIx7unibLehhDU6q3DCwNH_OOLx6bgNtmvGYJDd1cywpkLQ3YzNCUPWnfMBJRP3iQP_WI21uP6cvo0DqBPBM4wvVzHbCT0vnIflwkbgEWkq1FprqAitZlop9KjLqzjp9vyQ","e":"AQAB"}"#;
const JWK_PUB_RSA_PKIX: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAp2VQo8qCfWAZmdWBVaYu
Yb+a+tWWm78K6Sr9poCvNcmv8rUPSLACxitQWR8gZaSH1DklVkqz+Ed8Cdlf8lkD
g4Ex5tkB64jRdC1Uvn4CDpOH6cp+N2s8hTFLqy9/YaDmyQS7HiqthOi9oVjil1VM
eWfaAbClGtFt6UnKD0Vb/DvLoWYQSqlhgBArFJi966b4E1pOq5Ad02K8pHBDThlI
Ix7unibLehhDU6q3DCwNH/OOLx6bgNtmvGYJDd1cywpkLQ3YzNCUPWnfMBJRP3iQ
P/WI21uP6cvo0DqBPBM4wvVzHbCT0vnIflwkbgEWkq1FprqAitZlop9KjLqzjp9v
yQIDAQAB
-----END PUBLIC KEY-----
";
const JWK_PRIV_RSA: &str = r#"{"kty" : "RSA","kid" : "cc34c0a0-bd5a-4a3c-a50d-a2a7db7643df","use" : "sig","n"   : "pjdss8ZaDfEH6K6U7GeW2nxDqR4IP049fk1fK0lndimbMMVBdPv_hSpm8T8EtBDxrUdi1OHZfMhUixGaut-3nQ4GG9nM249oxhCtxqqNvEXrmQRGqczyLxuh-fKn9Fg--hS9UpazHpfVAFnB5aCfXoNhPuI8oByyFKMKaOVgHNqP5NBEqabiLftZD3W_lsFCPGuzr4Vp0YS7zS2hDYScC2oOMu4rGU1LcMZf39p3153Cq7bS2Xh6Y-vw5pwzFYZdjQxDn8x8BG3fJ6j8TGLXQsbKH1218_HcUJRvMwdpbUQG5nvA2GXVqLqdwp054Lzk9_B_f1lVrmOKuHjTNHq48w","e"   : "AQAB","d"   : "ksDmucdMJXkFGZxiomNHnroOZxe8AmDLDGO1vhs-POa5PZM7mtUPonxwjVmthmpbZzla-kg55OFfO7YcXhg-Hm2OWTKwm73_rLh3JavaHjvBqsVKuorX3V3RYkSro6HyYIzFJ1Ek7sLxbjDRcDOj4ievSX0oN9l-JZhaDYlPlci5uJsoqro_YrE0PRRWVhtGynd-_aWgQv1YzkfZuMD-hJtDi1Im2humOWxA4eZrFs9eG-whXcOvaSwO4sSGbS99ecQZHM2TcdXeAs1PvjVgQ_dKnZlGN3lTWoWfQP55Z7Tgt8Nf1q4ZAKd-NlMe-7iqCFfsnFwXjSiaOa2CRGZn-Q","p"   : "4A5nU4ahEww7B65yuzmGeCUUi8ikWzv1C81pSyUKvKzu8CX41hp9J6oRaLGesKImYiuVQK47FhZ--wwfpRwHvSxtNU9qXb8ewo-BvadyO1eVrIk4tNV543QlSe7pQAoJGkxCia5rfznAE3InKF4JvIlchyqs0RQ8wx7lULqwnn0","q"   : "ven83GM6SfrmO-TBHbjTk6JhP_3CMsIvmSdo4KrbQNvp4vHO3w1_0zJ3URkmkYGhz2tgPlfd7v1l2I6QkIh4Bumdj6FyFZEBpxjE4MpfdNVcNINvVj87cLyTRmIcaGxmfylY7QErP8GFA-k4UoH_eQmGKGK44TRzYj5hZYGWIC8","dp"  : "lmmU_AG5SGxBhJqb8wxfNXDPJjf__i92BgJT2Vp4pskBbr5PGoyV0HbfUQVMnw977RONEurkR6O6gxZUeCclGt4kQlGZ-m0_XSWx13v9t9DIbheAtgVJ2mQyVDvK4m7aRYlEceFh0PsX8vYDS5o1txgPwb3oXkPTtrmbAGMUBpE","dq"  : "mxRTU3QDyR2EnCv0Nl0TCF90oliJGAHR9HJmBe__EjuCBbwHfcT8OG3hWOv8vpzokQPRl5cQt3NckzX3fs6xlJN4Ai2Hh2zduKFVQ2p-AF2p6Yfahscjtq-GY9cB85NxLy2IXCC0PF--Sq9LOrTE9QV988SJy_yUrAjcZ5MmECk","qi"  : "ldHXIrEmMZVaNwGzDF9WG8sHj2mOZmQpw9yrjLK9hAsmsNr5LTyqWAqJIYZSwPTYWhY4nu2O0EY9G9uYiqewXfCKw_UngrJt8Xwfq1Zruz0YY869zPN4GiE9-9rzdZB33RBw8kIOquY3MK74FMwCihYx_LiU2YTHkaoJ3ncvtvg"}"#;
const JWK_PRIV_RSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIIEwAIBADANBgkqhkiG9w0BAQEFAASCBKowggSmAgEAAoIBAQCmN2yzxloN8Qfo
rpTsZ5bafEOpHgg/Tj1+TV8rSWd2KZswxUF0+/+FKmbxPwS0EPGtR2LU4dl8yFSL
EZq637edDgYb2czbj2jGEK3Gqo28ReuZBEapzPIvG6H58qf0WD76FL1SlrMel9UA
WcHloJ9eg2E+4jygHLIUowpo5WAc2o/k0ESppuIt+1kPdb+WwUI8a7OvhWnRhLvN
LaENhJwLag4y7isZTUtwxl/f2nfXncKrttLZeHpj6/DmnDMVhl2NDEOfzHwEbd8n
qPxMYtdCxsofXbXz8dxQlG8zB2ltRAbme8DYZdWoup3CnTngvOT38H9/WVWuY4q4
eNM0erjzAgMBAAECggEBAJLA5rnHTCV5BRmcYqJjR566DmcXvAJgywxjtb4bPjzm
uT2TO5rVD6J8cI1ZrYZqW2c5WvpIOeThXzu2HF4YPh5tjlkysJu9/6y4dyWr2h47
warFSrqK191d0WJEq6Oh8mCMxSdRJO7C8W4w0XAzo+Inr0l9KDfZfiWYWg2JT5XI
ubibKKq6P2KxND0UVlYbRsp3fv2loEL9WM5H2bjA/oSbQ4tSJtobpjlsQOHmaxbP
XhvsIV3Dr2ksDuLEhm0vfXnEGRzNk3HV3gLNT741YEP3Sp2ZRjd5U1qFn0D+eWe0
4LfDX9auGQCnfjZTHvu4qghX7JxcF40omjmtgkRmZ/kCgYEA4A5nU4ahEww7B65y
uzmGeCUUi8ikWzv1C81pSyUKvKzu8CX41hp9J6oRaLGesKImYiuVQK47FhZ++wwf
pRwHvSxtNU9qXb8ewo+BvadyO1eVrIk4tNV543QlSe7pQAoJGkxCia5rfznAE3In
KF4JvIlchyqs0RQ8wx7lULqwnn0CgYEAven83GM6SfrmO+TBHbjTk6JhP/3CMsIv
mSdo4KrbQNvp4vHO3w1/0zJ3URkmkYGhz2tgPlfd7v1l2I6QkIh4Bumdj6FyFZEB
pxjE4MpfdNVcNINvVj87cLyTRmIcaGxmfylY7QErP8GFA+k4UoH/eQmGKGK44TRz
Yj5hZYGWIC8CgYEAlmmU/AG5SGxBhJqb8wxfNXDPJjf//i92BgJT2Vp4pskBbr5P
GoyV0HbfUQVMnw977RONEurkR6O6gxZUeCclGt4kQlGZ+m0/XSWx13v9t9DIbheA
tgVJ2mQyVDvK4m7aRYlEceFh0PsX8vYDS5o1txgPwb3oXkPTtrmbAGMUBpECgYEA
mxRTU3QDyR2EnCv0Nl0TCF90oliJGAHR9HJmBe//EjuCBbwHfcT8OG3hWOv8vpzo
kQPRl5cQt3NckzX3fs6xlJN4Ai2Hh2zduKFVQ2p+AF2p6Yfahscjtq+GY9cB85Nx
Ly2IXCC0PF++Sq9LOrTE9QV988SJy/yUrAjcZ5MmECkCgYEAldHXIrEmMZVaNwGz
DF9WG8sHj2mOZmQpw9yrjLK9hAsmsNr5LTyqWAqJIYZSwPTYWhY4nu2O0EY9G9uY
iqewXfCKw/UngrJt8Xwfq1Zruz0YY869zPN4GiE9+9rzdZB33RBw8kIOquY3MK74
FMwCihYx/LiU2YTHkaoJ3ncvtvg=
-----END PRIVATE KEY-----
";
const JWK_PUB_EC: &str = r#"{"kid":"https://kv-test-mj.vault.azure.net/keys/ec-p-521/e3d0e9c179b54988860c69c6ae172c65","kty":"EC","key_ops":["sign","verify"],"crv":"P-521","x":"AedOAtb7H7Oz1C_cPKI_R4CN_eai5nteY6KFW07FOoaqgQfVCSkQDK22fCOiMT_28c8LZYJRsiIFz_IIbQUW7bXj","y":"AOnchHnmBphIWXvanmMAmcCDkaED6ycW8GsAl9fQ43BMVZTqcTkJYn6vGnhn7MObizmkNSmgZYTwG-vZkIg03HHs"}"#;
const JWK_PUB_EC_PKIX: &str = "-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQB504C1vsfs7PUL9w8oj9HgI395qLm
e15jooVbTsU6hqqBB9UJKRAMrbZ8I6IxP/bxzwtlglGyIgXP8ghtBRbtteMA6dyE
eeYGmEhZe9qeYwCZwIORoQPrJxbwawCX19DjcExVlOpxOQlifq8aeGfsw5uLOaQ1
KaBlhPAb69mQiDTccew=
-----END PUBLIC KEY-----
";
const JWK_PRIV_EC: &str = r#"{"kty": "EC","kid": "rie3pHe8u8gjSa0IaJfqk7_iEfHeYfDYx-Bqi7vQc0s","crv": "P-256","x": "fDjg3Nq4jPf8IOZ0277aPVal_8iXySnzLUJAZghUzZM","y": "d863PeyBOK_Q4duiSmWwgIRzi1RPlFZTR-vACMlPg-Q","d": "jJs5xsoHUetdMabtt8H2KyX5T92nGul1chFeMT5hlr0"}"#;
const JWK_PRIV_EC_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjJs5xsoHUetdMabt
t8H2KyX5T92nGul1chFeMT5hlr2hRANCAAR8OODc2riM9/wg5nTbvto9VqX/yJfJ
KfMtQkBmCFTNk3fOtz3sgTiv0OHbokplsICEc4tUT5RWU0frwAjJT4Pk
-----END PRIVATE KEY-----
";

fn try_render(text: &str, data: &[(&str, &str)]) -> Result<String, TemplateError> {
    let data: BTreeMap<String, Vec<u8>> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    Engine::new(Limits::default()).render_string("crypto", text, &data)
}

fn render(text: &str, data: &[(&str, &str)]) -> String {
    try_render(text, data).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn error(text: &str, data: &[(&str, &str)]) -> String {
    match try_render(text, data) {
        Ok(out) => panic!("{text}: expected an error, rendered {} bytes", out.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn eso_pkcs12_extract_without_password() {
    // TestExecute "base64 pkcs12 extract".
    let data = [("secret", PKCS12_NOPASS)];
    assert_eq!(
        render("{{ .secret | b64dec | pkcs12key }}", &data),
        PKCS12_KEY
    );
    assert_eq!(
        render("{{ .secret | b64dec | pkcs12cert }}", &data),
        PKCS12_CERT
    );
}

#[test]
fn eso_pkcs12_extract_with_password() {
    // TestExecute "base64 pkcs12 extract with password".
    let data = [("secret", PKCS12_PASS_123456)];
    assert_eq!(
        render(r#"{{ .secret | b64dec | pkcs12keyPass "123456" }}"#, &data),
        PKCS12_KEY
    );
    assert_eq!(
        render(r#"{{ .secret | b64dec | pkcs12certPass "123456" }}"#, &data),
        PKCS12_CERT
    );
}

#[test]
fn eso_pkcs12_wrong_password_fails() {
    // TestExecute "pkcs12 key wrong password", "pkcs12 cert wrong password".
    let data = [("secret", PKCS12_PASS_123456)];
    for f in ["pkcs12keyPass", "pkcs12certPass"] {
        let e = error(
            &format!(r#"{{{{ .secret | b64dec | {f} "wrong" }}}}"#),
            &data,
        );
        assert!(e.contains("unable to decode pkcs12"), "{e}");
        assert!(e.contains("password incorrect"), "{e}");
    }
}

#[test]
fn go_pkcs12_modern_archives_decode() {
    // pkcs12_test.go TestPemToPkcs12 / TestFullPemToPkcs12: go-pkcs12's Modern encoding
    // (PBES2, AES-256-CBC, SHA-256 MAC) of certData, keyData (and otherCert), password
    // "password".
    let data = [
        ("single", GO_PKCS12_MODERN),
        ("chain", GO_PKCS12_MODERN_CHAIN),
    ];
    assert_eq!(
        render(
            r#"{{ .single | b64dec | pkcs12keyPass "password" }}"#,
            &data
        ),
        PKCS12_KEY
    );
    assert_eq!(
        render(
            r#"{{ .single | b64dec | pkcs12certPass "password" }}"#,
            &data
        ),
        PKCS12_CERT
    );
    assert_eq!(
        render(r#"{{ .chain | b64dec | pkcs12keyPass "password" }}"#, &data),
        PKCS12_KEY
    );
    // Two unrelated certificates do not form one chain: archive order.
    assert_eq!(
        render(
            r#"{{ .chain | b64dec | pkcs12certPass "password" }}"#,
            &data
        ),
        format!("{PKCS12_CERT}{LEAF}")
    );
}

#[test]
fn pem_to_pkcs12_round_trips_through_pkcs12key_and_pkcs12cert() {
    let data = [("cert", PKCS12_CERT), ("key", PKCS12_KEY)];
    for (tpl, pass) in [
        ("{{ pemToPkcs12 .cert .key }}", ""),
        (r#"{{ pemToPkcs12Pass .cert .key "s3cret" }}"#, "s3cret"),
    ] {
        let pfx = render(tpl, &data);
        let back = [("pfx", pfx.as_str())];
        assert_eq!(
            render(
                &format!(r#"{{{{ .pfx | b64dec | pkcs12keyPass "{pass}" }}}}"#),
                &back
            ),
            PKCS12_KEY
        );
        assert_eq!(
            render(
                &format!(r#"{{{{ .pfx | b64dec | pkcs12certPass "{pass}" }}}}"#),
                &back
            ),
            PKCS12_CERT
        );
    }
}

#[test]
fn full_pem_to_pkcs12_keeps_the_chain_and_pkcs12cert_orders_it() {
    // The chain given root first; pkcs12cert orders it leaf, intermediate, root as
    // TestPkcs12certPass "read file without password" expects.
    let chain = format!("{LEAF}{ROOT}{INTERMEDIATE}");
    let data = [("cert", chain.as_str()), ("key", PKCS12_KEY)];
    let pfx = render(r#"{{ fullPemToPkcs12Pass .cert .key "1234" }}"#, &data);
    let back = [("pfx", pfx.as_str())];
    assert_eq!(
        render(r#"{{ .pfx | b64dec | pkcs12certPass "1234" }}"#, &back),
        format!("{LEAF}{INTERMEDIATE}{ROOT}")
    );
    let pfx = render("{{ fullPemToPkcs12 .cert .key }}", &data);
    let back = [("pfx", pfx.as_str())];
    assert_eq!(
        render("{{ .pfx | b64dec | pkcs12cert }}", &back),
        format!("{LEAF}{INTERMEDIATE}{ROOT}")
    );
}

#[test]
fn a_disjunct_chain_keeps_the_archive_order() {
    // TestPkcs12certPass "read disjunct cert chain": leaf, root, intermediate, disjunct.
    let chain = format!("{LEAF}{ROOT}{INTERMEDIATE}{DISJUNCT_ROOT}");
    let data = [("cert", chain.as_str()), ("key", PKCS12_KEY)];
    let pfx = render("{{ fullPemToPkcs12 .cert .key }}", &data);
    assert_eq!(
        render("{{ .pfx | b64dec | pkcs12cert }}", &[("pfx", pfx.as_str())]),
        chain
    );
}

#[test]
fn full_pem_to_pkcs12_refuses_trailing_data_as_go_does() {
    // ESO's parseCaCerts dereferences the nil block of data that is not PEM.
    let chain = format!("{LEAF}{INTERMEDIATE}junk");
    let e = error(
        "{{ fullPemToPkcs12 .cert .key }}",
        &[("cert", &chain), ("key", PKCS12_KEY)],
    );
    assert!(e.contains("error calling fullPemToPkcs12"), "{e}");
}

#[test]
fn pem_truststore_to_pkcs12_holds_every_certificate() {
    let certs = format!("{ROOT}{INTERMEDIATE}");
    let pfx = render(
        r#"{{ pemTruststoreToPKCS12Pass .certs "pw" }}"#,
        &[("certs", &certs)],
    );
    assert!(pfx.starts_with("MII"), "{pfx}");
    assert!(render("{{ pemTruststoreToPKCS12 .certs }}", &[("certs", &certs)]).starts_with("MII"));
}

#[test]
fn eso_jwk_to_pem() {
    // TestExecute "jwk rsa pub pem", "jwk rsa priv pem", "jwk ecdsa pub pem",
    // "jwk ecdsa priv pem".
    for (f, jwk, want) in [
        ("jwkPublicKeyPem", JWK_PUB_RSA, JWK_PUB_RSA_PKIX),
        ("jwkPrivateKeyPem", JWK_PRIV_RSA, JWK_PRIV_RSA_PKCS8),
        ("jwkPublicKeyPem", JWK_PUB_EC, JWK_PUB_EC_PKIX),
        ("jwkPrivateKeyPem", JWK_PRIV_EC, JWK_PRIV_EC_PKCS8),
    ] {
        assert_eq!(
            render(&format!("{{{{ .secret | {f} }}}}"), &[("secret", jwk)]),
            want,
            "{f}"
        );
    }
}

#[test]
fn jwk_public_key_of_a_private_jwk_and_okp_keys() {
    // The public half of the EC private key is the point in its PKCS#8 encoding.
    let out = render("{{ .k | jwkPublicKeyPem }}", &[("k", JWK_PRIV_EC)]);
    assert!(
        out.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfDjg")
    );
    // RFC 8037 A.1 Ed25519 key; Go's PKCS#8 is the seed only.
    let okp = r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    assert_eq!(
        render("{{ .k | jwkPublicKeyPem }}", &[("k", okp)]),
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n"
    );
    assert_eq!(
        render("{{ .k | jwkPrivateKeyPem }}", &[("k", okp)]),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"
    );
    let e = error(
        "{{ .k | jwkPrivateKeyPem }}",
        &[("k", r#"{"kty":"oct","k":"c2VjcmV0"}"#)],
    );
    assert!(e.contains("unsupported"), "{e}");
}

#[test]
fn eso_rsa_decrypt() {
    // TestExecute "rsa decrypt rsa-oaep sha1 pkcs8 data base64" and
    // "rsa decrypt rsa-oaep sha256 pkcs1 data base64".
    assert_eq!(
        render(
            r#"{{ .private_key | rsaDecrypt "RSA-OAEP" "SHA1" (.data_crypted_base64 | b64dec) }}"#,
            &[
                ("private_key", RSA_PKCS8),
                ("data_crypted_base64", RSA_SHA1_PKCS8)
            ],
        ),
        "a1b2c3d4"
    );
    assert_eq!(
        render(
            r#"{{ .private_key | rsaDecrypt "RSA-OAEP" "SHA256" (.data_crypted_base64 | b64dec) }}"#,
            &[
                ("private_key", RSA_PKCS1),
                ("data_crypted_base64", RSA_SHA256_PKCS1)
            ],
        ),
        "hellopkcs1sha256"
    );
    // An unknown hash is SHA-256, as in ESO's getHash.
    assert_eq!(
        render(
            r#"{{ .k | rsaDecrypt "RSA-OAEP" "None" (.c | b64dec) }}"#,
            &[("k", RSA_PKCS1), ("c", RSA_SHA256_PKCS1)],
        ),
        "hellopkcs1sha256"
    );
    // Scheme "None" passes the input through.
    assert_eq!(
        render(r#"{{ rsaDecrypt "None" "" "plain" "" }}"#, &[]),
        "plain"
    );
}

#[test]
fn rsa_decrypt_failures() {
    let data = [("k", RSA_PKCS1), ("c", RSA_SHA256_PKCS1), ("ec", ROOT_KEY)];
    let e = error(
        r#"{{ .k | rsaDecrypt "RSA-OAEP" "SHA1" (.c | b64dec) }}"#,
        &data,
    );
    assert!(e.contains("error decrypting data with RSA"), "{e}");
    let e = error(r#"{{ .ec | rsaDecrypt "RSA-OAEP" "SHA256" "x" }}"#, &data);
    assert!(e.contains("could not parse RSA private key"), "{e}");
    let e = error(
        r#"{{ "no pem" | rsaDecrypt "RSA-OAEP" "SHA256" "x" }}"#,
        &data,
    );
    assert!(e.contains("failed to decode PEM block"), "{e}");
    let e = error(r#"{{ .k | rsaDecrypt "RSA-PKCS1" "SHA256" "x" }}"#, &data);
    assert!(e.contains("decryption scheme is not supported"), "{e}");
}

#[test]
fn eso_filter_cert_chain() {
    // pem_test.go TestFilterCertChain.
    let full = format!("{LEAF}{INTERMEDIATE}{ROOT}");
    let no_root = format!("{LEAF}{INTERMEDIATE}");
    let cases: &[(&str, &str, &str)] = &[
        ("leaf", LEAF, LEAF),
        ("leaf", &no_root, LEAF),
        ("leaf", ROOT, ""),
        ("leaf", &full, LEAF),
        ("intermediate", LEAF, ""),
        ("intermediate", &no_root, INTERMEDIATE),
        ("intermediate", &full, INTERMEDIATE),
        ("root", LEAF, ""),
        ("root", ROOT, ROOT),
        ("root", &full, ROOT),
    ];
    for (kind, input, want) in cases {
        assert_eq!(
            render(
                &format!(r#"{{{{ .chain | filterCertChain "{kind}" }}}}"#),
                &[("chain", input)]
            ),
            *want,
            "{kind}"
        );
    }
    // Any order of the input gives the same roles.
    let shuffled = format!("{ROOT}{LEAF}{INTERMEDIATE}");
    assert_eq!(
        render(r#"{{ .c | filterCertChain "leaf" }}"#, &[("c", &shuffled)]),
        LEAF
    );
    // "empty cert chain" and "cert chain with pkey" fail.
    let with_key = format!("{LEAF}{ROOT_KEY}");
    assert!(try_render(r#"{{ .c | filterCertChain "leaf" }}"#, &[("c", "")]).is_err());
    assert!(try_render(r#"{{ .c | filterCertChain "leaf" }}"#, &[("c", &with_key)]).is_err());
    let disjunct = format!("{LEAF}{DISJUNCT_ROOT}{INTERMEDIATE}{ROOT}");
    let e = error(r#"{{ .c | filterCertChain "leaf" }}"#, &[("c", &disjunct)]);
    assert!(
        e.contains("found multiple leaf or disjunct certificates"),
        "{e}"
    );
}

#[test]
fn eso_cert_sans() {
    // pem_test.go TestCertSANs and TestExecute's certSANs rows.
    let data = [("certificate", PKCS12_CERT)];
    assert_eq!(
        render(r#"{{ .certificate | certSANs | join "," }}"#, &data),
        "gooble.com"
    );
    assert_eq!(
        render("{{ index (.certificate | certSANs) 0 }}", &data),
        "gooble.com"
    );
    assert_eq!(
        render("{{ .certificate | certSANs | toJson }}", &data),
        r#"["gooble.com"]"#
    );
    let key_and_cert = format!("{PKCS12_KEY}{PKCS12_CERT}");
    assert_eq!(
        render(
            r#"{{ .secret | filterPEM "CERTIFICATE" | certSANs | join "," }}"#,
            &[("secret", &key_and_cert)]
        ),
        "gooble.com"
    );
    let junk = format!("some junk\n{PKCS12_CERT}");
    assert_eq!(
        render(r#"{{ .c | certSANs | join "," }}"#, &[("c", &junk)]),
        "gooble.com"
    );
    assert_eq!(
        render("{{ .c | certSANs | toJson }}", &[("c", SANS)]),
        r#"["example.com","www.example.com","192.168.1.10","10.0.0.1","admin@example.com","https://example.com"]"#
    );
    for bad in ["not-a-pem", ""] {
        let e = error("{{ .c | certSANs }}", &[("c", bad)]);
        assert!(e.contains("failed to decode PEM block"), "{e}");
    }
}

#[test]
fn no_crypto_error_holds_key_material_or_data() {
    const CANARY: &str = "canary-S3CRET";
    let jwk_bad_d = r#"{"kty":"EC","crv":"P-256","x":"fDjg3Nq4jPf8IOZ0277aPVal_8iXySnzLUJAZghUzZM","y":"d863PeyBOK_Q4duiSmWwgIRzi1RPlFZTR-vACMlPg-Q","d":"_____________________________________________w"}"#;
    let data = [
        ("canary", CANARY),
        ("key", RSA_PKCS8),
        ("pfx", PKCS12_PASS_123456),
        ("jwk", jwk_bad_d),
        ("cert", PKCS12_CERT),
    ];
    let templates = [
        "{{ .canary | pkcs12key }}",
        "{{ .canary | pkcs12cert }}",
        "{{ .pfx | b64dec | pkcs12keyPass .canary }}",
        "{{ .pfx | b64dec | pkcs12certPass .canary }}",
        "{{ .canary | certSANs }}",
        "{{ .canary | filterCertChain .canary }}",
        "{{ .canary | jwkPublicKeyPem }}",
        "{{ .canary | jwkPrivateKeyPem }}",
        "{{ .jwk | jwkPrivateKeyPem }}",
        r#"{{ .key | rsaDecrypt "RSA-OAEP" "SHA256" .canary }}"#,
        r#"{{ .key | rsaDecrypt .canary .canary .canary }}"#,
        r#"{{ .canary | rsaDecrypt "RSA-OAEP" .canary .canary }}"#,
        "{{ pemToPkcs12 .cert .canary }}",
        "{{ pemToPkcs12Pass .canary .key .canary }}",
        "{{ fullPemToPkcs12 (print .cert .canary) .key }}",
        "{{ fullPemToPkcs12Pass (print .cert .canary) .key .canary }}",
        "{{ pemTruststoreToPKCS12 .canary }}",
    ];
    let key_body: Vec<&str> = RSA_PKCS8
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for t in templates {
        let e = error(t, &data);
        assert!(!e.contains("S3CRET"), "{t}: {e}");
        assert!(!e.contains("_____"), "{t}: {e}");
        for line in &key_body {
            assert!(!e.contains(line), "{t}: {e}");
        }
    }
}
