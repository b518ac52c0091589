//! The one place every format's key goes through: a key blob plus its line,
//! comment and options becomes a [`Finding`] — decoded, checked against its
//! label, and judged by the policy.

use crate::finding::{Finding, Refusal, RefusalKind, SourceFormat, Verdict};
use crate::key_blob::decode_blob;
use crate::options::KeyOptions;
use crate::policy::KeyPolicy;

/// A key blob found in the input, not yet judged.
pub(crate) struct Candidate<'a> {
    pub(crate) line: usize,
    pub(crate) format: SourceFormat,
    /// The type written before the data (OpenSSH lines only).
    pub(crate) declared: Option<&'a str>,
    pub(crate) blob: Vec<u8>,
    pub(crate) comment: String,
    pub(crate) options: KeyOptions,
}

/// Decodes and judges a candidate.
pub(crate) fn judge(candidate: Candidate<'_>, policy: &KeyPolicy) -> Finding {
    let Candidate {
        line,
        format,
        declared,
        blob,
        comment,
        options,
    } = candidate;
    let refused = |kind, reason| Verdict::Refused(Refusal { line, kind, reason });
    let (key, verdict) = match decode_blob(&blob, declared, &comment) {
        Err((kind, reason)) => (None, refused(kind, reason)),
        Ok(facts) => {
            let verdict = if options.has("cert-authority") {
                refused(
                    RefusalKind::CertificateAuthority,
                    "the option cert-authority makes this line a certificate authority, and certificate authorities are not supported yet — remove cert-authority to use it as an ordinary key".to_owned(),
                )
            } else {
                match policy.judge(&facts) {
                    Ok(()) => Verdict::Accepted,
                    Err((kind, reason)) => refused(kind, reason),
                }
            };
            (Some(facts), verdict)
        }
    };
    Finding {
        line,
        format,
        key,
        comment,
        options,
        verdict,
    }
}
