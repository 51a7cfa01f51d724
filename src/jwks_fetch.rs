//! Fetching an identity provider's JWKS over HTTPS (rustls on aws-lc-rs, the Mozilla roots of
//! webpki-roots): no redirects, 10 seconds at most, 1 MB at most. Plain http only for loopback.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{AuthError, Result};
use crate::oidc::{check_jwks_url, MAX_JWKS_BYTES};

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn fetch_jwks(url: &str) -> Result<String> {
    check_jwks_url(url)?;
    let unreachable = |e: ureq::Error| AuthError::ProviderUnreachable(format!("{url}: {e}"));
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(true)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("accept", "application/json")
        .call()
        .map_err(unreachable)?;
    // Redirects are not followed (a JWKS URL is configured exactly): anything but 200 fails.
    if response.status() != 200 {
        return Err(AuthError::ProviderUnreachable(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_JWKS_BYTES)
        .read_to_string()
        .map_err(unreachable)
}
