//! Fetching an identity provider's JWKS over HTTPS (rustls on aws-lc-rs, the Mozilla roots of
//! webpki-roots): no redirects, 1 MB at most, and a hard deadline of 10 seconds for the whole
//! exchange. Plain http only for loopback.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{AuthError, Result};
use crate::oidc::{check_jwks_url, MAX_JWKS_BYTES};

/// ureq's timeouts bound each wait on the socket, not a server that sends one byte at a time:
/// the deadline is checked between reads too (a read waits about a second at most past it).
const DEADLINE: Duration = Duration::from_secs(10);

/// The JWKS document at `url`. `interrupted` is called between reads (the pgrx layer checks for
/// a query cancel there).
pub fn fetch_jwks(url: &str, interrupted: &dyn Fn()) -> Result<String> {
    check_jwks_url(url)?;
    let started = Instant::now();
    let unreachable =
        |e: &dyn std::fmt::Display| AuthError::ProviderUnreachable(format!("{url}: {e}"));
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(DEADLINE))
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(Duration::from_secs(5)))
        .max_redirects(0)
        .http_status_as_error(true)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("accept", "application/json")
        .call()
        .map_err(|e| unreachable(&e))?;
    // Redirects are not followed (a JWKS URL is configured exactly): anything but 200 fails.
    if response.status() != 200 {
        return Err(AuthError::ProviderUnreachable(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let mut reader = response.body_mut().as_reader();
    let mut body = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        interrupted();
        if started.elapsed() > DEADLINE {
            return Err(unreachable(&"no complete answer within 10 seconds"));
        }
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            // A signal to this backend (PostgreSQL's latches use them): read on.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreachable(&e)),
        };
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
        if body.len() as u64 > MAX_JWKS_BYTES {
            return Err(unreachable(&"the document is over 1 MB"));
        }
    }
    String::from_utf8(body).map_err(|_| unreachable(&"the document is not UTF-8"))
}
