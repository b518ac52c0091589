//! Checks of the test harness itself: a hung client is killed with its
//! children at the timeout, and a server handle stops its process when
//! dropped, so no test can leave processes behind.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn gone(pid: u32) -> bool {
    wait_until(Duration::from_secs(5), || {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // A zombie waiting for its parent counts as gone.
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    })
}

#[test]
fn a_hung_client_and_its_children_are_killed_at_the_timeout() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 300 & echo $!; wait"]);
    let r = run(cmd, None, Duration::from_secs(1));
    assert!(r.timed_out, "{r}");
    assert!(r.elapsed < Duration::from_secs(15), "{r}");
    let grandchild: u32 = r
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid printed: {r}"));
    assert!(
        gone(grandchild),
        "the client's child {grandchild} survived the timeout"
    );
}

#[test]
fn a_dropped_server_handle_stops_the_server() {
    let env = Env::new();
    let server = env.start();
    let pid = server.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(server.port > 0);
    drop(server);
    assert!(
        gone(pid),
        "ferry serve (pid {pid}) still runs after its handle was dropped"
    );
}
