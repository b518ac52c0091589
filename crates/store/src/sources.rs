//! Sources: how Ferry groups client addresses.
//!
//! One person or site rarely has one IPv6 address but usually has one /64,
//! while an IPv4 address is usually all a site has. Aggregated login attempts
//! and per-source penalties both count "one source" this way, so an admin
//! sees the same grouping in the account's attempts and in
//! `ferry penalties list`, and can type a source back into `ferry penalties
//! lift` in any of its usual spellings.

/// The source a client address belongs to, as Ferry groups addresses for
/// aggregated login attempts and per-source penalties: an IPv4 address on
/// its own (`192.0.2.7`), an IPv6 address by its /64 (`2001:db8:1:2::/64`,
/// one site or household). IPv4-mapped IPv6 addresses count as IPv4.
#[must_use]
pub fn source_of(addr: std::net::IpAddr) -> String {
    match addr.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// [`source_of`] for a recorded client address (`ip:port` or a bare IP);
/// text that is neither is kept as it is.
pub(crate) fn source_of_addr(client_addr: &str) -> String {
    client_addr
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| client_addr.parse::<std::net::IpAddr>())
        .map_or_else(|_| client_addr.to_owned(), source_of)
}

/// A source as a person types it (`192.0.2.7`, `2001:db8::1`,
/// `2001:db8::/64`) in the form [`source_of`] writes; `None` when it is
/// neither an address nor an IPv6 /64.
#[must_use]
pub fn parse_source(text: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(source_of(ip));
    }
    let (addr, bits) = text.split_once('/')?;
    match (addr.parse::<std::net::IpAddr>().ok()?, bits) {
        (std::net::IpAddr::V4(v4), "32") => Some(v4.to_string()),
        (ip @ std::net::IpAddr::V6(_), "64") => Some(source_of(ip)),
        _ => None,
    }
}
