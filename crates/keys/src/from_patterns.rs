//! The `from="…"` authorized_keys option: which client addresses may use a key.
//!
//! Matching follows sshd (`match_host_and_ip` with `UseDNS no`, where the "host
//! name" is the client's address text): the value is a comma-separated list of
//! entries; an entry is an address, a CIDR network (`10.0.0.0/8`, `2001:db8::/32`)
//! or a wildcard pattern over the address text (`*` any run, `?` one character,
//! e.g. `192.168.1.*`); a leading `!` negates an entry. The client is allowed when
//! at least one plain entry matches and no negated entry does. A list with an
//! invalid entry (empty, or a network with bits set past its mask) allows nobody,
//! as in sshd. IPv4-mapped IPv6 client addresses are matched as IPv4, as sshd does.
//!
//! [`check_from_patterns`] is the stricter upload-time check: it also refuses
//! host names and spaces, which sshd would silently never match.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a client at `addr` may use a key whose option is `from="patterns"`.
#[must_use]
pub fn from_allows(patterns: &str, addr: IpAddr) -> bool {
    let addr = normalise(addr);
    let addr_text = addr.to_string();
    let mut allowed = false;
    for entry in patterns.split(',') {
        let (negated, pattern) = split_negation(entry);
        if pattern.is_empty() {
            return false;
        }
        let matched = match parse_network(pattern) {
            Network::Valid(network, prefix) => contains(network, prefix, addr),
            Network::Inconsistent => return false,
            Network::Wildcard => glob_matches(&addr_text, &pattern.to_ascii_lowercase()),
        };
        if matched {
            if negated {
                return false;
            }
            allowed = true;
        }
    }
    allowed
}

/// Upload-time check of a `from=` value. Returns a plain-words explanation of
/// the first entry that would not work.
pub(crate) fn check_from_patterns(patterns: &str) -> Result<(), String> {
    for entry in patterns.split(',') {
        let (_, pattern) = split_negation(entry);
        if pattern.is_empty() {
            return Err(format!(
                "from=\"{patterns}\" has an empty entry (two commas in a row, a trailing comma or a lone !); list addresses or networks separated by single commas, e.g. from=\"10.0.0.0/8,192.0.2.7\""
            ));
        }
        if pattern.chars().any(char::is_whitespace) {
            return Err(format!(
                "from=\"{patterns}\" contains a space, which never matches; separate entries with commas only, e.g. from=\"10.0.0.0/8,192.0.2.7\""
            ));
        }
        match parse_network(pattern) {
            Network::Valid(..) => {}
            Network::Inconsistent => {
                return Err(match suggested_network(pattern) {
                    Some(fixed) => format!(
                        "from= entry {pattern} has address bits set past its /{} mask; write the network as {fixed}",
                        pattern.rsplit('/').next().unwrap_or_default()
                    ),
                    None => format!(
                        "from= entry {pattern} has a mask that is too long for its address; use at most /32 for IPv4 and /128 for IPv6"
                    ),
                });
            }
            Network::Wildcard if pattern.contains('/') => {
                return Err(format!(
                    "from= entry {pattern} is not a valid network; write it as an address and prefix length, e.g. 203.0.113.0/24"
                ));
            }
            Network::Wildcard => {
                let wildcard = pattern.contains(['*', '?']);
                let address_characters = pattern
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '*' | '?'));
                if !(wildcard && address_characters) {
                    return Err(format!(
                        "from= entry {pattern} is not an IP address; Ferry matches client addresses only, not host names — use an address or network such as 203.0.113.0/24"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn split_negation(entry: &str) -> (bool, &str) {
    match entry.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, entry),
    }
}

fn normalise(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

enum Network {
    /// An address or `address/prefix` with no bits set past the prefix.
    Valid(IpAddr, u32),
    /// Looks like a network but the prefix is too long or host bits are set:
    /// sshd treats the whole list as an error.
    Inconsistent,
    /// Not an address or network: matched as a wildcard pattern over the
    /// address text instead.
    Wildcard,
}

/// Mirrors OpenSSH's `addr_pton_cidr`.
fn parse_network(pattern: &str) -> Network {
    let (address, prefix) = match pattern.split_once('/') {
        Some((address, prefix)) => {
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Network::Wildcard;
            }
            match prefix.parse::<u32>() {
                Ok(prefix) if prefix <= 128 => (address, Some(prefix)),
                _ => return Network::Wildcard,
            }
        }
        None => (pattern, None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return Network::Wildcard;
    };
    let max = max_prefix(address);
    let prefix = prefix.unwrap_or(max);
    if prefix > max || masked(address, prefix) != address {
        return Network::Inconsistent;
    }
    Network::Valid(address, prefix)
}

fn suggested_network(pattern: &str) -> Option<String> {
    let (address, prefix) = pattern.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    (prefix <= max_prefix(address)).then(|| format!("{}/{prefix}", masked(address, prefix)))
}

fn max_prefix(address: IpAddr) -> u32 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn masked(address: IpAddr, prefix: u32) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - prefix.min(128)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

fn contains(network: IpAddr, prefix: u32, addr: IpAddr) -> bool {
    match (network, addr) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            masked(addr, prefix) == network
        }
        _ => false,
    }
}

/// sshd's `match_pattern`: `*` matches any run of characters, `?` exactly one.
fn glob_matches(text: &str, pattern: &str) -> bool {
    let text = text.as_bytes();
    let pattern = pattern.as_bytes();
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn single_addresses_and_cidrs() {
        assert!(from_allows("10.0.0.0/8", ip("10.200.3.4")));
        assert!(!from_allows("10.0.0.0/8", ip("11.0.0.1")));
        assert!(from_allows("192.0.2.7", ip("192.0.2.7")));
        assert!(!from_allows("192.0.2.7", ip("192.0.2.8")));
        assert!(from_allows(
            "10.0.0.0/8,172.16.0.0/12",
            ip("172.31.255.255")
        ));
        assert!(!from_allows("10.0.0.0/8,172.16.0.0/12", ip("172.32.0.0")));
        assert!(from_allows("0.0.0.0/0", ip("203.0.113.9")));
        assert!(from_allows("2001:db8::/32", ip("2001:db8:1::5")));
        assert!(!from_allows("2001:db8::/32", ip("2001:db9::5")));
        assert!(!from_allows("10.0.0.0/8", ip("::1")));
    }

    #[test]
    fn wildcards_match_the_address_text() {
        assert!(from_allows("192.168.1.*", ip("192.168.1.77")));
        assert!(!from_allows("192.168.1.*", ip("192.168.10.77")));
        assert!(from_allows("192.168.1.?", ip("192.168.1.7")));
        assert!(!from_allows("192.168.1.?", ip("192.168.1.77")));
        assert!(from_allows("*", ip("198.51.100.1")));
        assert!(from_allows("2001:DB8:*", ip("2001:db8::1")));
    }

    #[test]
    fn a_negated_match_refuses_even_when_another_entry_allows() {
        let list = "!10.1.0.0/16,10.0.0.0/8";
        assert!(from_allows(list, ip("10.2.0.1")));
        assert!(!from_allows(list, ip("10.1.0.1")));
        assert!(!from_allows("10.0.0.0/8,!10.1.2.*", ip("10.1.2.3")));
        // Only negations: nothing positive matched, so nobody is allowed.
        assert!(!from_allows("!10.1.0.0/16", ip("192.0.2.1")));
    }

    #[test]
    fn invalid_entries_allow_nobody() {
        assert!(!from_allows("10.0.0.1/8", ip("10.0.0.1")));
        assert!(!from_allows("10.0.0.0/33", ip("10.0.0.1")));
        assert!(!from_allows("10.0.0.0/8,,", ip("10.0.0.1")));
        assert!(!from_allows("!", ip("10.0.0.1")));
        assert!(!from_allows("", ip("10.0.0.1")));
        // A space makes an entry that can never match (sshd does not trim).
        assert!(!from_allows("10.0.0.0/8, 192.0.2.7", ip("192.0.2.7")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_patterns() {
        assert!(from_allows("10.0.0.0/8", ip("::ffff:10.1.2.3")));
        assert!(from_allows("10.1.2.*", ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn upload_check_explains_each_problem() {
        assert!(check_from_patterns("10.0.0.0/8,192.0.2.7,!10.1.*,2001:db8::/32,*").is_ok());
        let bits = check_from_patterns("10.0.0.1/8").unwrap_err();
        assert!(bits.contains("10.0.0.0/8"), "{bits}");
        assert!(
            check_from_patterns("10.0.0.0/33")
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            check_from_patterns("10.0.0.0/8,")
                .unwrap_err()
                .contains("empty entry")
        );
        assert!(
            check_from_patterns("10.0.0.0/8, 10.1.0.0/16")
                .unwrap_err()
                .contains("space")
        );
        assert!(
            check_from_patterns("sis.example.com")
                .unwrap_err()
                .contains("host names")
        );
        assert!(
            check_from_patterns("*.example.com")
                .unwrap_err()
                .contains("host names")
        );
        assert!(
            check_from_patterns("10.0.0.0/x")
                .unwrap_err()
                .contains("not a valid network")
        );
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_matches("abc", "a*c"));
        assert!(glob_matches("abc", "*"));
        assert!(glob_matches("", "*"));
        assert!(glob_matches("aXbXc", "a*b*c"));
        assert!(!glob_matches("abc", "a*d"));
        assert!(!glob_matches("abc", "ab"));
        assert!(glob_matches("abc", "ab?"));
    }
}
