//! The store failing under the relay: a full disk, files that cannot be written. These tests need
//! root (to mount a small tmpfs, or to make files immutable), so `cargo test` lists them as
//! ignored with that reason; `.ci/run` runs them.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ChildRelay, Peer, TestRelay, delivered_ids, eventually, sample};

/// A tmpfs of a few MiB mounted on a temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs (this test needs root)");
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path("filler")).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn webhook_config(peer: &Peer, store: &Path) -> String {
    format!(
        "[storage]\npath = \"{}\"\n[destinations.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
        store.display(),
        peer.url("/h")
    )
}

fn trigger(id: &str) -> String {
    format!(
        r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "{id}", "alert": {{"ruleName": "R"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a small tmpfs and fills it; .ci/run runs it"]
async fn an_outcome_that_cannot_be_recorded_pauses_the_worker_instead_of_resending() {
    const EVENTS: usize = 26;
    let disk = SmallDisk::mount("32m");
    let peer = Peer::start().await;
    let dir = common::config_dir(&webhook_config(&peer, &disk.path("relay.db")), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    peer.hold();
    for i in 0..EVENTS {
        assert_eq!(relay.post(trigger(&format!("full-{i}"))).await.0, 200);
    }
    // delivery.concurrency = 8 attempts are at the peer, waiting for their answers.
    for _ in 0..8 {
        peer.next().await;
    }
    disk.fill();
    peer.release();
    // The 8 answers are 200 but cannot be recorded: nothing may be sent again meanwhile.
    let resent = peer.next_within(Duration::from_secs(3)).await;
    assert!(
        resent.is_none(),
        "sent again while the outcome could not be recorded: {resent:?}"
    );
    disk.free();
    let hook_id = |body: &serde_json::Value| body["event"]["id"].as_str().unwrap().to_owned();
    let counts = delivered_ids(&peer, dir.path(), EVENTS - 8, hook_id, HashMap::new()).await;
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    assert_eq!(counts.len(), EVENTS - 8, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: mounts a small tmpfs and fills it; .ci/run runs it"]
async fn readyz_fails_every_time_while_the_disk_is_full() {
    let disk = SmallDisk::mount("32m");
    let peer = Peer::start().await;
    let dir = common::config_dir(&webhook_config(&peer, &disk.path("relay.db")), &[]);
    let relay = ChildRelay::start(dir.path()).await;
    // Enough events for the store's log to be written back and started over (every 1,000
    // pages, 8 MiB in a new store): a small write can then reuse its space even with the disk
    // full, and proves nothing about room for the next event.
    let padding = "p".repeat(16 * 1024);
    for i in 0..700 {
        let body = format!(
            r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "fill-{i}", "alert": {{"ruleName": "R", "padding": "{padding}"}}}}"#
        );
        assert_eq!(relay.post(body).await.0, 200);
    }
    let ready = async || {
        common::client()
            .get(format!("http://{}/readyz", relay.addr))
            .send()
            .await
            .expect("readyz answers")
            .status()
            .as_u16()
    };
    for round in 0..2 {
        disk.fill();
        for _ in 0..5 {
            assert_eq!(ready().await, 503, "round {round}: ready with a full disk");
        }
        disk.free();
        eventually("never ready again", async || match ready().await {
            200 => Ok(()),
            other => Err(other.to_string()),
        })
        .await;
        assert_eq!(relay.post(trigger(&format!("r-{round}"))).await.0, 200);
    }
}

/// Makes files immutable (`chattr +i`, which binds root too) until dropped.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(paths: &[std::path::PathBuf]) -> Option<Immutable> {
        for path in paths {
            let ok = Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                drop(Immutable(paths.to_vec()));
                return None;
            }
        }
        Some(Immutable(paths.to_vec()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(path).status();
        }
    }
}

#[tokio::test]
#[ignore = "needs root: makes the store's files immutable with chattr +i; .ci/run runs it"]
async fn readyz_and_posts_fail_while_the_store_cannot_be_written_and_recover() {
    let relay = TestRelay::start("[destinations.console]\nkind = \"console\"\n").await;
    assert_eq!(relay.post(&sample("alert_trigger.json")).await.0, 200);
    let store = relay.dir.path().join("data");
    let files: Vec<_> = ["alert-relay.db", "alert-relay.db-wal"]
        .iter()
        .map(|f| store.join(f))
        .collect();
    let guard = Immutable::set(&files).expect("chattr +i (needs root and a file system with it)");
    let (status, body) = relay.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not ready"), "{body}");
    let (status, answer) = relay.post(&sample("alert_clear.json")).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("cannot store"),
        "{answer}"
    );
    drop(guard);
    eventually("never ready again", async || {
        let (status, body) = relay.get("/readyz").await;
        if status == 200 { Ok(()) } else { Err(body) }
    })
    .await;
    assert_eq!(
        relay.post(&sample("alert_clear.json")).await.1["status"],
        "accepted"
    );
    relay.stop().await;
}
