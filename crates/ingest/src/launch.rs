//! Starting the hand-off command so that it dies with its node, cheaply.
//!
//! A hand-off command must not outlive the node that started it: a killed
//! node's batch is taken up again by another node, and a command still
//! running behind the queue's back would hand the batch over twice. Linux's
//! `PR_SET_PDEATHSIG` does that, but it has to be set in the child between
//! fork and exec, which makes the standard library fork the whole server —
//! a copy of every page table, costing more the more sessions the node
//! holds (most of a burst's hand-off time at a few thousand districts).
//!
//! So the node starts a small launcher instead with `posix_spawn` (no page
//! tables copied): the `ferry` binary itself, as
//! `ferry __run-hand-off PARENT_PID PROGRAM ARGS…` ([`LAUNCH_ARG`]), which
//! sets the signal, checks that its parent is still the node, and execs the
//! command ([`exec_hand_off`]). Without a launcher (the library's own tests)
//! the command is started with the signal set between fork and exec.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt as _;
use std::path::Path;

/// The first argument that makes `ferry` the launcher.
pub const LAUNCH_ARG: &str = "__run-hand-off";

/// The command `argv` to start: through `launcher` when there is one.
pub(crate) fn command(launcher: Option<&Path>, argv: &[String]) -> tokio::process::Command {
    match launcher {
        Some(launcher) => {
            let mut command = tokio::process::Command::new(launcher);
            command
                .arg(LAUNCH_ARG)
                .arg(std::process::id().to_string())
                .args(argv);
            command
        }
        None => {
            let mut command = tokio::process::Command::new(&argv[0]);
            command.args(&argv[1..]);
            die_with_parent(&mut command);
            command
        }
    }
}

/// The command gets SIGKILL when the thread that started it (a runtime
/// worker, alive as long as the node) ends.
fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The launcher's work, for `ferry __run-hand-off PARENT_PID PROGRAM ARGS…`
/// (`args` without the binary's name and [`LAUNCH_ARG`]): arranges to be
/// killed when the node's thread that started it ends, then becomes the
/// command. Returns only when that failed, with the reason.
#[must_use]
pub fn exec_hand_off(args: &[OsString]) -> std::io::Error {
    let (Some(parent), Some(program)) = (args.first(), args.get(1)) else {
        return std::io::Error::other(format!(
            "usage: ferry {LAUNCH_ARG} PARENT_PID PROGRAM [ARGS…] (started by ferry serve only)"
        ));
    };
    // SAFETY: prctl with these arguments only changes this process's own
    // parent-death signal.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return std::io::Error::last_os_error();
    }
    // The node may have died before the signal was set: then the parent is
    // someone else already, and the command must not run.
    let parent_now = std::os::unix::process::parent_id().to_string();
    if OsStr::new(&parent_now) != parent.as_os_str() {
        return std::io::Error::other("the ferry node that started this hand-off is gone");
    }
    std::process::Command::new(program).args(&args[2..]).exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_launcher_the_command_runs_directly() {
        let output = command(None, &["/bin/echo".into(), "hello".into()])
            .output()
            .await
            .unwrap();
        assert_eq!(output.stdout, b"hello\n");
    }

    #[test]
    fn the_launcher_needs_its_parent_and_a_program() {
        // (The parent check itself is exercised end to end, by
        // tests/ingest_e2e.rs's kill -9 test through the real binary.)
        let error = exec_hand_off(&["42".into()]);
        assert!(error.to_string().contains("usage"), "{error}");
    }
}
