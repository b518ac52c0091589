//! The server log's writer: every control character inside an event's line
//! is shown as an escape (`\n`, `\x1b`), so nothing a client sends (a user
//! name, a file name, a banner) can forge a log line or drive the operator's
//! terminal. One mechanism for every field of every event: the formatter
//! writes each event as one buffer ending in a newline, and only that last
//! newline is kept. JSON lines pass unchanged (their encoder escapes
//! control characters already).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Makes [`EscapingWriter`]s over stderr.
#[derive(Clone, Copy, Default)]
pub struct EscapingStderr;

impl<'a> MakeWriter<'a> for EscapingStderr {
    type Writer = EscapingWriter<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(io::stderr())
    }
}

/// Writes each buffer with its control characters escaped, except one
/// newline at its end.
pub struct EscapingWriter<W>(pub W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, newline) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (buf, false),
        };
        if !body.iter().any(|&b| is_control(b)) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b if is_control(b) => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                b => out.push(b),
            }
        }
        if newline {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(input: &[u8]) -> String {
        let mut writer = EscapingWriter(Vec::new());
        assert_eq!(writer.write(input).unwrap(), input.len());
        String::from_utf8(writer.0).unwrap()
    }

    #[test]
    fn only_the_final_newline_survives() {
        assert_eq!(
            through(b"INFO refused user=a\nINFO login accepted account=x\n"),
            "INFO refused user=a\\nINFO login accepted account=x\n"
        );
        assert_eq!(
            through(b"path=\x1b[2J\r\t\x7f\n"),
            "path=\\x1b[2J\\r\\t\\x7f\n"
        );
        assert_eq!(through("é plain line\n".as_bytes()), "é plain line\n");
        assert_eq!(through(b"{\"msg\":\"a\\nb\"}\n"), "{\"msg\":\"a\\nb\"}\n");
    }
}
