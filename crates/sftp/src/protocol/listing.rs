//! File attributes and `ls -l` style long names, as OpenSSH's sftp-server
//! produces them, because clients such as WinSCP parse the long name of a
//! READDIR entry.
//!
//! Times are shown in UTC (the server has no idea of the client's zone).
//! This module only formats; it never touches the disk.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use super::codec::Attrs;

/// SFTP attributes of a file, from its `lstat`.
pub fn attrs_of(meta: &Metadata) -> Attrs {
    Attrs {
        size: Some(meta.size()),
        uid_gid: Some((meta.uid(), meta.gid())),
        permissions: Some(meta.mode()),
        times: Some((clamp_time(meta.atime()), clamp_time(meta.mtime()))),
    }
}

fn clamp_time(seconds: i64) -> u32 {
    seconds.clamp(0, u32::MAX as i64) as u32
}

/// `-rw-r--r--    1 owner    owner        1234 Jan  5 13:04 name`, the layout
/// of OpenSSH's `ls_file`. `owner` stands in for both user and group names.
pub fn long_name(name: &[u8], meta: &Metadata, owner: &str, now: i64) -> Vec<u8> {
    let width = owner.len().max(8);
    let head = format!(
        "{} {:>3} {:<width$} {:<width$} {:>8} {} ",
        mode_string(meta.mode()),
        meta.nlink(),
        owner,
        owner,
        meta.size(),
        listing_time(meta.mtime(), now),
    );
    let mut line = head.into_bytes();
    line.extend_from_slice(name);
    line
}

/// `drwxr-xr-x` from a `st_mode`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => 'd',
        libc::S_IFLNK => 'l',
        libc::S_IFCHR => 'c',
        libc::S_IFBLK => 'b',
        libc::S_IFIFO => 'p',
        libc::S_IFSOCK => 's',
        _ => '-',
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    let specials = [
        (libc::S_ISUID, 's'),
        (libc::S_ISGID, 's'),
        (libc::S_ISVTX, 't'),
    ];
    for (who, (special, letter)) in specials.into_iter().enumerate() {
        let bits = (mode >> (6 - 3 * who)) & 0o7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// `Jan  5 13:04` for the last six months, `Jan  5  2023` otherwise.
fn listing_time(mtime: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const SIX_MONTHS: i64 = 365 * 24 * 60 * 60 / 2;
    let (year, month, day) = civil_date(mtime.div_euclid(86_400));
    let month = MONTHS[(month - 1) as usize];
    if mtime + SIX_MONTHS > now && mtime <= now + SIX_MONTHS {
        let seconds = mtime.rem_euclid(86_400);
        format!(
            "{month} {day:>2} {:02}:{:02}",
            seconds / 3600,
            seconds % 3600 / 60
        )
    } else {
        format!("{month} {day:>2}  {year}")
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01
/// (Howard Hinnant's civil_from_days).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        let jan5_2024_1304 = 19_727 * 86_400 + 13 * 3600 + 4 * 60;
        assert_eq!(
            listing_time(jan5_2024_1304, jan5_2024_1304 + 100),
            "Jan  5 13:04"
        );
        assert_eq!(
            listing_time(jan5_2024_1304, jan5_2024_1304 + 400 * 86_400),
            "Jan  5  2024"
        );
    }

    #[test]
    fn long_name_has_the_openssh_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.csv");
        std::fs::write(&path, b"12345").unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let line = String::from_utf8(long_name(
            b"roster.csv",
            &meta,
            "district",
            meta.mtime() + 5,
        ))
        .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[1], "1");
        assert_eq!(fields[2], "district");
        assert_eq!(fields[3], "district");
        assert_eq!(fields[4], "5");
        assert_eq!(*fields.last().unwrap(), "roster.csv");
        assert_eq!(fields.len(), 9);
        assert!(line.starts_with("-rw"));
    }
}
