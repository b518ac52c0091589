//! Whole-input tests of [`crate::parse_keys`]: each format, each policy
//! refusal, mixed inputs, input-level errors and the JSON shape. The keys were
//! made with OpenSSH 9.2 `ssh-keygen` (and `openssl` for the Ed25519 SPKI); the
//! expected fingerprints are what `ssh-keygen -lf` printed for them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::*;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHt7FG8QccvS+anYNk5Ipv3c9/oBKCEo8Svk1a3Hqyh ed";
const ED25519_FP: &str = "SHA256:uot7Y9CJ4WmYJI4yzB8f07ETkq4EOcle5uizg+iA1Ew";

const P384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBHIc1rdWo5ThM8jd+odUzv1d8e9w37/LlcLW+i80LnmeTfcw2503g4Hhb4z/iZjTQspi80loEaibXtOP3p4qvI+uM5L82RXy6Np4j2o5PWBffNE9oxKBODbYtoheeCJJrw== p384";
const P384_FP: &str = "SHA256:yHYLQdgVg6Unil/FjiBLjASroZKTJSAnO2UA3TLX0EA";

const P521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAF0zAfkEqjCWHPLXJj11l3X/KAFD5AKDJETyN+b2HF3DEjGwhvkXNjiJBlmbIwOaBdK1bWhspMrKIjqLZ6jAsHadgA/8fvvUx0Yb9D5NtT5krPFCMje8i9N6TOUirA1DWVWw9OzWLVV88FQnLG5k6S6mBfk9DHEV02ZYsuxWWMm5mF7sg== p521";
const P521_FP: &str = "SHA256:rvM85P8fd7FEEYAEG387SSHBOxXm+/Ct8fd0014eJ2g";

/// `ssh-keygen -t rsa -b 2047`: its modulus is 2047 bits but 256 bytes long.
const RSA_2047: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAFiFHSHsHxgMtWHZb5wrGWN5CxzR5XUv8QuQX/HPmM/YyT99NVV028M54VoDcEsLwFAjw+JaLQDE56qkZS3Z2gf2j+TNXLLUsLxtSTKnEpm6RnXgVYbHm7qgGT3Eb1tjYEbkBu1VIwwTPSY/B57X8eNnqjI9WO0Yog4XpVB+DcEiH5pDgXUhP8/39hAJH+X+JYwV2qME3iH7KGnWNi1rkHee0CBTIvj4u+4KU1WuVTj6kbp25KtMw59FCJTMmmcMaebypmxWGIvlPyR7pV5LrNe0PP97Z8hjG8AIlW91ITcWRmtOw0bq0DwfD5wV9YbBlJz3XRIwvMjP01XGm1ASchE= rsa2047";
const RSA_2047_FP: &str = "SHA256:tzxSx94Y/c4GZJHjiAzbdiaajVpwPbUawjaiDaIcVIg";

const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC8YOcCsZ6f8sxQa5xGKi9X2GlsQyzK+pgB1UcsrTAIkhc8IODQD9jHXQS7DA4FfQHQMZdtZkdm1Et4toZjv64i5uzNW46k70ZYT4QKqWA81VgbVPatUwgOw/g3RQ/tBcNxIjgdAQgzQqL0Rie+N0psLjgCZbcnZVNj2zthCJpv8w== rsa1024";
const RSA_1024_FP: &str = "SHA256:tKAnfjIiPVsppUTIZeDrgd9LSYNRppMZ9rv/33H3Qxw";

const DSA: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBAL6sraXlt8MfiJXZ/+XZXZlmx9hYEwCJ9iJ/8nl5L1yEgQq5F6WeZcz2Z1qDT/oECLZEg2PhiSzE0Ts2DA2grDdEeGAL/rBkcfg5bxPM+rE8RQoUdl5PzOxiSEXoBzYLOkqZZygIQeBxI2IpTmpNJ23EGLHwmdm1aZ6SsrAptjUtAAAAFQCWLaK6+hTG1NGbctqbgwj0lTivbwAAAIBAMr1+zEkQPCUqYlRuyENrQJKTjurK7nHAS+oiDAF9uX071fz2b69gh6fNVDbjLOvgmSdpdMLBBJTbrha7MLWOuI8Ft7kBXeECDJ4EZjdee+A91rNh46CLcXCDy9nEIMfNduXcOyGCOw8GHc/NgHGf8YGyn1LNK7I8btMn3kD+qgAAAIBIWKoWweLNmMbiUK28MVgELL+weJnOrfKJ2VKa4m88GkwP7NcDl91UouTaGGmnmSbg3RzN2uZmZw7X3frB5sOKA1yNNgk2qkPdgrlsM46NB+hfDVBROTGQFmbV5Ux1mbKx+AKBtMQPZe/OfM4+Zig8SLD1fTyScbPPTXootx+m2A== dsa";
const DSA_FP: &str = "SHA256:cW4KLhllZ5qKfUS6RdLz/NEulXOL3XvHZoPvUNkYnsM";

/// A user certificate for [`ED25519`], signed by a throwaway CA.
const ED25519_CERT: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIFZcltVKPIEWWBfXmcHQMsu8fMc4CfB/V9fJAQWvekyrAAAAIMHt7FG8QccvS+anYNk5Ipv3c9/oBKCEo8Svk1a3HqyhAAAAAAAAAAAAAAABAAAABHRlc3QAAAAFAAAAAXUAAAAAAAAAAP//////////AAAAAAAAAIIAAAAVcGVybWl0LVgxMS1mb3J3YXJkaW5nAAAAAAAAABdwZXJtaXQtYWdlbnQtZm9yd2FyZGluZwAAAAAAAAAWcGVybWl0LXBvcnQtZm9yd2FyZGluZwAAAAAAAAAKcGVybWl0LXB0eQAAAAAAAAAOcGVybWl0LXVzZXItcmMAAAAAAAAAAAAAADMAAAALc3NoLWVkMjU1MTkAAAAgT3IDBonkeyC35IuVyY1nySif9v6t8CxTId/Xt3KjcPEAAABTAAAAC3NzaC1lZDI1NTE5AAAAQDK3wt6qqVANGWQp8g34EJINkFwDKZpKoGZIa6H2z/wVjYj5TX7ttHIppIazx8jlwik/IfReQ4TUCykqHYHkEAU= ed";

/// `ssh-keygen -e -m RFC4716` of [`ED25519`].
const ED25519_RFC4716: &str = "---- BEGIN SSH2 PUBLIC KEY ----
Comment: \"256-bit ED25519, converted by root@vm from OpenSSH\"
AAAAC3NzaC1lZDI1NTE5AAAAIMHt7FG8QccvS+anYNk5Ipv3c9/oBKCEo8Svk1a3Hqyh
---- END SSH2 PUBLIC KEY ----";

/// `ssh-keygen -e -m PEM` of [`RSA_2047`].
const RSA_2047_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCQKCAQBYhR0h7B8YDLVh2W+cKxljeQsc0eV1L/ELkF/xz5jP2Mk/fTVVdNvD
OeFaA3BLC8BQI8PiWi0AxOeqpGUt2doH9o/kzVyy1LC8bUkypxKZukZ14FWGx5u6
oBk9xG9bY2BG5AbtVSMMEz0mPwee1/HjZ6oyPVjtGKIOF6VQfg3BIh+aQ4F1IT/P
9/YQCR/l/iWMFdqjBN4h+yhp1jYta5B3ntAgUyL4+LvuClNVrlU4+pG6duSrTMOf
RQiUzJpnDGnm8qZsVhiL5T8ke6VeS6zXtDz/e2fIYxvACJVvdSE3FkZrTsNG6tA8
Hw+cFfWGwZSc910SMLzIz9NVxptQEnIRAgMBAAE=
-----END RSA PUBLIC KEY-----";

/// `ssh-keygen -e -m PKCS8` of [`RSA_2047`].
const RSA_2047_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIIBITANBgkqhkiG9w0BAQEFAAOCAQ4AMIIBCQKCAQBYhR0h7B8YDLVh2W+cKxlj
eQsc0eV1L/ELkF/xz5jP2Mk/fTVVdNvDOeFaA3BLC8BQI8PiWi0AxOeqpGUt2doH
9o/kzVyy1LC8bUkypxKZukZ14FWGx5u6oBk9xG9bY2BG5AbtVSMMEz0mPwee1/Hj
Z6oyPVjtGKIOF6VQfg3BIh+aQ4F1IT/P9/YQCR/l/iWMFdqjBN4h+yhp1jYta5B3
ntAgUyL4+LvuClNVrlU4+pG6duSrTMOfRQiUzJpnDGnm8qZsVhiL5T8ke6VeS6zX
tDz/e2fIYxvACJVvdSE3FkZrTsNG6tA8Hw+cFfWGwZSc910SMLzIz9NVxptQEnIR
AgMBAAE=
-----END PUBLIC KEY-----";

/// `ssh-keygen -e -m PKCS8` of [`P384`].
const P384_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEchzWt1ajlOEzyN36h1TO/V3x73Dfv8uV
wtb6LzQueZ5N9zDbnTeDgeFvjP+JmNNCymLzSWgRqJte04/eniq8j64zkvzZFfLo
2niPajk9YF980T2jEoE4Nti2iF54Ikmv
-----END PUBLIC KEY-----";

/// The same P-384 key with a compressed point (`openssl ec -conv_form compressed`).
const P384_SPKI_COMPRESSED: &str = "-----BEGIN PUBLIC KEY-----
MEYwEAYHKoZIzj0CAQYFK4EEACIDMgADchzWt1ajlOEzyN36h1TO/V3x73Dfv8uV
wtb6LzQueZ5N9zDbnTeDgeFvjP+JmNNC
-----END PUBLIC KEY-----";

/// `openssl genpkey -algorithm ed25519 | openssl pkey -pubout`.
const ED25519_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAEP/4zKjBXZvP+YvrjZMPczADeMmSqpDw+Sn89/osSQI=
-----END PUBLIC KEY-----";
const ED25519_SPKI_FP: &str = "SHA256:yLTJCQ6PHk4HOZkyGUvAY8D5gpQxAMhw3PpNdsrQNrY";

/// Shape of a PEM RSA private key (a made-up body: only the framing matters).
const FAKE_PRIVATE_BODY: &str = "MIIEogIBAAKCAQEA4qGGsecretsecretsecretsecretsecret";

fn parse(text: &str) -> Vec<Finding> {
    parse_keys(text.as_bytes(), &KeyPolicy::default()).expect("input is accepted as a whole")
}

fn only(text: &str) -> Finding {
    let mut findings = parse(text);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.remove(0)
}

fn code(finding: &Finding) -> &'static str {
    finding.refusal().map_or("accepted", |r| r.kind.code())
}

fn facts(finding: &Finding) -> &KeyFacts {
    finding.key.as_ref().expect("a well-formed key")
}

#[test]
fn ed25519_one_liner_is_accepted_with_ssh_keygen_facts() {
    let finding = only(ED25519);
    assert!(finding.is_accepted());
    assert_eq!(finding.line, 1);
    assert_eq!(finding.format, SourceFormat::Openssh);
    let key = facts(&finding);
    assert_eq!(key.algorithm, "ssh-ed25519");
    assert_eq!((key.key_type.as_str(), key.bits), ("ED25519", 256));
    assert_eq!(key.fingerprint, ED25519_FP);
    assert_eq!(key.openssh_line, ED25519);
    assert_eq!(fingerprint(&key.public_key), ED25519_FP);
    assert_eq!(finding.comment, "ed");
    assert_eq!(
        finding.describe(),
        format!("line 1: accepted ED25519 256 {ED25519_FP} ed")
    );
}

#[test]
fn ecdsa_p384_and_p521_are_accepted() {
    for (line, fp, bits) in [(P384, P384_FP, 384), (P521, P521_FP, 521)] {
        let finding = only(line);
        assert!(finding.is_accepted(), "{}", finding.describe());
        let key = facts(&finding);
        assert_eq!((key.key_type.as_str(), key.bits), ("ECDSA", bits));
        assert_eq!(key.fingerprint, fp);
        assert_eq!(key.openssh_line, line);
    }
}

#[test]
fn rsa_size_is_exact_modulus_bits() {
    let finding = only(RSA_2047);
    let key = facts(&finding);
    assert_eq!((key.key_type.as_str(), key.bits), ("RSA", 2047));
    assert_eq!(key.fingerprint, RSA_2047_FP);
    let refusal = finding.refusal().unwrap();
    assert_eq!(
        refusal.kind,
        RefusalKind::RsaTooSmall {
            bits: 2047,
            min_bits: 2048
        }
    );
    assert_eq!(
        refusal.to_string(),
        "line 1: RSA key is 2047 bits; at least 2048 are required — generate a new key with ssh-keygen -t ed25519"
    );
    let lenient = KeyPolicy { min_rsa_bits: 2047 };
    let findings = parse_keys(RSA_2047.as_bytes(), &lenient).unwrap();
    assert!(findings[0].is_accepted());
}

#[test]
fn short_rsa_is_refused_but_described() {
    let text = format!("# old key\n\n{RSA_1024}\n");
    let finding = only(&text);
    assert_eq!(finding.line, 3);
    assert_eq!(code(&finding), "rsa-too-small");
    assert_eq!(facts(&finding).fingerprint, RSA_1024_FP);
    assert_eq!(facts(&finding).bits, 1024);
    assert!(
        finding
            .describe()
            .starts_with("line 3: RSA key is 1024 bits; at least 2048 are required")
    );
}

#[test]
fn dsa_is_refused_but_described() {
    let finding = only(DSA);
    assert_eq!(finding.refusal().unwrap().kind, RefusalKind::Dsa);
    let key = facts(&finding);
    assert_eq!((key.key_type.as_str(), key.bits), ("DSA", 1024));
    assert_eq!(key.fingerprint, DSA_FP);
    assert!(finding.describe().contains("ssh-keygen -t ed25519"));
}

#[test]
fn certificates_are_refused_with_the_certified_keys_fingerprint() {
    let finding = only(ED25519_CERT);
    assert_eq!(
        finding.refusal().unwrap().kind,
        RefusalKind::Certificate {
            algorithm: "ssh-ed25519-cert-v01@openssh.com".into()
        }
    );
    assert!(
        finding
            .describe()
            .contains("certificate authorities are not supported yet")
    );
    let key = facts(&finding);
    assert!(key.is_certificate);
    assert_eq!((key.key_type.as_str(), key.bits), ("ED25519-CERT", 256));
    assert_eq!(key.fingerprint, ED25519_FP);
}

#[test]
fn security_keys_and_unknown_types_are_refused() {
    fn string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut sk = Vec::new();
    string(&mut sk, b"sk-ssh-ed25519@openssh.com");
    string(&mut sk, &[7; 32]);
    string(&mut sk, b"ssh:");
    let line = format!(
        "sk-ssh-ed25519@openssh.com {} yubikey",
        STANDARD.encode(&sk)
    );
    let finding = only(&line);
    assert_eq!(code(&finding), "security-key");
    assert_eq!(facts(&finding).key_type, "ED25519-SK");

    let mut unknown = Vec::new();
    string(&mut unknown, b"ssh-xmss@openssh.com");
    string(&mut unknown, &[1; 40]);
    let line = format!("ssh-xmss@openssh.com {}", STANDARD.encode(&unknown));
    let finding = only(&line);
    assert_eq!(
        finding.refusal().unwrap().kind,
        RefusalKind::UnknownType {
            name: "ssh-xmss@openssh.com".into()
        }
    );
}

#[test]
fn rfc4716_block_matches_the_openssh_key() {
    let finding = only(ED25519_RFC4716);
    assert!(finding.is_accepted(), "{}", finding.describe());
    assert_eq!(finding.format, SourceFormat::Rfc4716);
    assert_eq!(
        finding.comment,
        "256-bit ED25519, converted by root@vm from OpenSSH"
    );
    let key = facts(&finding);
    assert_eq!(key.fingerprint, ED25519_FP);
    assert_eq!(
        key.openssh_line,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHt7FG8QccvS+anYNk5Ipv3c9/oBKCEo8Svk1a3Hqyh 256-bit ED25519, converted by root@vm from OpenSSH"
    );
}

#[test]
fn rfc4716_with_continued_header_and_x_header() {
    let text = "---- BEGIN SSH2 PUBLIC KEY ----\r\nx-vendor: thing\r\nComment: \"a long \\\r\ncomment\"\r\nAAAAC3NzaC1lZDI1NTE5AAAAIMHt7FG8QccvS+anYNk5Ipv3c9/oBKCE\r\no8Svk1a3Hqyh\r\n---- END SSH2 PUBLIC KEY ----\r\n";
    let finding = only(text);
    assert!(finding.is_accepted(), "{}", finding.describe());
    assert_eq!(finding.comment, "a long comment");
    assert_eq!(facts(&finding).fingerprint, ED25519_FP);
}

#[test]
fn rfc4716_damaged_body_is_refused() {
    let text = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAAC3NzaC1lZDI1NTE5AAAAIMHt7FG8\n---- END SSH2 PUBLIC KEY ----";
    assert_eq!(code(&only(text)), "incomplete-key");
    let text = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA*C3\n---- END SSH2 PUBLIC KEY ----";
    assert_eq!(code(&only(text)), "malformed-base64");
    let text = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAAC3NzaC1lZDI1NTE5AAAAIMHt7FG8\n";
    assert_eq!(code(&only(text)), "unterminated-block");
}

#[test]
fn pem_pkcs1_and_spki_rsa() {
    let lenient = KeyPolicy { min_rsa_bits: 2047 };
    for (text, format) in [
        (RSA_2047_PKCS1, SourceFormat::PemPkcs1),
        (RSA_2047_SPKI, SourceFormat::PemSpki),
    ] {
        let findings = parse_keys(text.as_bytes(), &lenient).unwrap();
        let finding = &findings[0];
        assert!(finding.is_accepted(), "{}", finding.describe());
        assert_eq!(finding.format, format);
        let key = facts(finding);
        assert_eq!(key.fingerprint, RSA_2047_FP);
        assert_eq!(key.bits, 2047);
        assert_eq!(key.openssh_line, RSA_2047.trim_end_matches(" rsa2047"));
        // The default policy still refuses it for its size.
        assert_eq!(code(&only(text)), "rsa-too-small");
    }
}

#[test]
fn pem_spki_ecdsa_compressed_or_not_and_ed25519() {
    for text in [P384_SPKI, P384_SPKI_COMPRESSED] {
        let finding = only(text);
        assert!(finding.is_accepted(), "{}", finding.describe());
        assert_eq!(facts(&finding).fingerprint, P384_FP);
        assert_eq!(facts(&finding).key_type, "ECDSA");
    }
    let finding = only(ED25519_SPKI);
    assert!(finding.is_accepted(), "{}", finding.describe());
    assert_eq!(facts(&finding).fingerprint, ED25519_SPKI_FP);
}

#[test]
fn other_pem_blocks_are_named() {
    let text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    let finding = only(text);
    assert_eq!(
        finding.refusal().unwrap().kind,
        RefusalKind::UnsupportedBlock {
            label: "CERTIFICATE".into()
        }
    );
}

#[test]
fn authorized_keys_file_with_everything() {
    let text = format!(
        "\u{feff}# team keys\r\n\r\n{ED25519}   \r\n  # {P384}\r\nfrom=\"10.0.0.0/8\",no-pty,expiry-time=\"20301231\" {P521}\r\nrestrict,command=\"internal-sftp -d \\\"/in\\\"\" {}\r\n",
        RSA_2047.trim_end_matches(" rsa2047")
    );
    let policy = KeyPolicy { min_rsa_bits: 2047 };
    let findings = parse_keys(text.as_bytes(), &policy).unwrap();
    let lines: Vec<_> = findings.iter().map(|f| (f.line, code(f))).collect();
    assert_eq!(lines, [(3, "accepted"), (5, "accepted"), (6, "accepted")]);
    assert_eq!(findings[0].comment, "ed");
    assert_eq!(findings[1].options.from_patterns(), Some("10.0.0.0/8"));
    assert_eq!(findings[1].options.expiry_time(), Some(1_924_905_600));
    assert_eq!(
        findings[1].options.to_authorized_keys_prefix(),
        "from=\"10.0.0.0/8\",no-pty,expiry-time=\"20301231\""
    );
    assert_eq!(findings[2].comment, "");
    assert_eq!(
        findings[2].options.get("command").unwrap().value.as_deref(),
        Some("internal-sftp -d \"/in\"")
    );
    assert_eq!(facts(&findings[2]).fingerprint, RSA_2047_FP);
}

#[test]
fn mixed_formats_are_each_reported_on_their_own_line() {
    let text = format!(
        "{ED25519}\n{P384_SPKI}\n\n{ED25519_RFC4716}\n-----BEGIN RSA PRIVATE KEY-----\n{FAKE_PRIVATE_BODY}\n-----END RSA PRIVATE KEY-----\nnot a key at all\n{RSA_1024}\n"
    );
    let findings = parse(&text);
    let summary: Vec<_> = findings
        .iter()
        .map(|f| (f.line, f.format, code(f)))
        .collect();
    assert_eq!(
        summary,
        [
            (1, SourceFormat::Openssh, "accepted"),
            (2, SourceFormat::PemSpki, "accepted"),
            (8, SourceFormat::Rfc4716, "duplicate"),
            (12, SourceFormat::PrivateKey, "private-key"),
            (15, SourceFormat::Text, "not-a-key"),
            (16, SourceFormat::Openssh, "rsa-too-small"),
        ]
    );
    assert_eq!(
        findings[2].refusal().unwrap().kind,
        RefusalKind::Duplicate { first_line: 1 }
    );
    let everything = format!("{findings:?} {}", serde_json::to_string(&findings).unwrap());
    assert!(!everything.contains(&FAKE_PRIVATE_BODY[10..30]));
}

#[test]
fn private_keys_are_refused_and_never_echoed() {
    for (label, format) in [
        ("OPENSSH PRIVATE KEY", PrivateKeyFormat::Openssh),
        ("RSA PRIVATE KEY", PrivateKeyFormat::PemRsa),
        ("EC PRIVATE KEY", PrivateKeyFormat::PemEc),
        ("PRIVATE KEY", PrivateKeyFormat::Pkcs8),
        ("ENCRYPTED PRIVATE KEY", PrivateKeyFormat::Pkcs8),
    ] {
        let text = format!("-----BEGIN {label}-----\n{FAKE_PRIVATE_BODY}\n-----END {label}-----\n");
        let finding = only(&text);
        let refusal = finding.refusal().unwrap();
        assert!(
            matches!(refusal.kind, RefusalKind::PrivateKey { format: f, .. } if f == format),
            "{label}: {refusal:?}"
        );
        assert!(refusal.reason.contains("Keep that file secret"));
        assert!(refusal.reason.contains("send only the public half"));
        assert!(finding.key.is_none());
        let shown = format!(
            "{finding:?} {refusal} {}",
            serde_json::to_string(&finding).unwrap()
        );
        assert!(!shown.contains("secretsecret"), "{shown}");
    }
}

#[test]
fn input_level_errors() {
    let policy = KeyPolicy::default();
    assert_eq!(parse_keys(b"", &policy), Err(InputError::Empty));
    assert_eq!(parse_keys(b" \r\n\t\n", &policy), Err(InputError::Empty));
    assert_eq!(parse_keys(b"\xEF\xBB\xBF", &policy), Err(InputError::Empty));
    assert_eq!(
        parse_keys(b"# only a comment\n\n# and another\n", &policy),
        Err(InputError::NoKeyFound)
    );
    assert_eq!(
        parse_keys(b"hello\nthis is my key\n", &policy),
        Err(InputError::NoKeyFound)
    );
    assert_eq!(
        parse_keys(b"\x00\x9f\x92\x96 binary\xff\n\x01\x02", &policy),
        Err(InputError::NotText)
    );
    let mut big = format!("{ED25519}\n").into_bytes();
    big.resize(MAX_INPUT_BYTES + 1, b'#');
    assert_eq!(
        parse_keys(&big, &policy),
        Err(InputError::TooLarge {
            size: MAX_INPUT_BYTES + 1
        })
    );
    big.truncate(MAX_INPUT_BYTES);
    assert!(parse_keys(&big, &policy).unwrap()[0].is_accepted());
    let message = InputError::TooLarge { size: 2_000_000 }.to_string();
    assert!(message.contains("2000000 bytes"), "{message}");
    assert!(InputError::Empty.to_string().contains("empty"));
}

#[test]
fn utf16_from_powershell_is_read() {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in format!("{ED25519}\r\n").encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    let findings = parse_keys(&bytes, &KeyPolicy::default()).unwrap();
    assert!(findings[0].is_accepted());
    assert_eq!(facts(&findings[0]).fingerprint, ED25519_FP);
}

#[test]
fn json_shape_for_key_inspect() {
    let text = format!("from=\"10.0.0.0/8\" {ED25519}\n{RSA_1024}\n");
    let findings = parse(&text);
    let json = serde_json::to_value(&findings).unwrap();
    assert_eq!(json[0]["line"], 1);
    assert_eq!(json[0]["type"], "ED25519");
    assert_eq!(json[0]["algorithm"], "ssh-ed25519");
    assert_eq!(json[0]["bits"], 256);
    assert_eq!(json[0]["fingerprint"], ED25519_FP);
    assert_eq!(json[0]["comment"], "ed");
    assert_eq!(json[0]["options"][0]["name"], "from");
    assert_eq!(json[0]["options"][0]["value"], "10.0.0.0/8");
    assert_eq!(json[0]["options_text"], "from=\"10.0.0.0/8\"");
    assert_eq!(json[0]["accepted"], true);
    assert!(json[0]["reason"].is_null());
    assert_eq!(json[1]["accepted"], false);
    assert_eq!(json[1]["reason_code"], "rsa-too-small");
    assert_eq!(
        json[1]["reason"],
        "RSA key is 1024 bits; at least 2048 are required — generate a new key with ssh-keygen -t ed25519"
    );
    assert_eq!(json[1]["fingerprint"], RSA_1024_FP);
}

#[test]
fn policy_defaults() {
    assert_eq!(KeyPolicy::default().min_rsa_bits, 2048);
    assert_eq!(MAX_KEYS_PER_ACCOUNT, 100);
    assert_eq!(MAX_INPUT_BYTES, 1_048_576);
}
