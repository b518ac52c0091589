//! The notification webhook: one JSON document per message, POSTed and
//! signed like the hand-off webhook (`X-Ferry-Signature: sha256=<hex
//! HMAC-SHA256 of the body>`), so one receiver can check both.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::NotifyError;

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
#[must_use]
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("sha256={hex}")
}

/// POSTs `body` (JSON) to `url`, signed; any 2xx is delivered.
pub(crate) async fn post(url: &str, secret: &str, body: &str) -> Result<(), NotifyError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| NotifyError::Webhook(e.to_string()))?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-ferry-signature",
            signature(secret.as_bytes(), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| NotifyError::Webhook(e.without_url().to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(NotifyError::Webhook(format!(
            "it answered {}",
            response.status()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signature_is_the_rfc_4231_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
