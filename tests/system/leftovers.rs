//! Nothing a test starts outlives it: a cluster's replicas and nginx (master and workers) are
//! gone once it is dropped, whatever order the test drops its folder and its cluster in.

use std::time::{Duration, Instant};

use crate::helpers::{round_robin_cluster, test_settings};

/// Live (not zombie) processes whose process group is one of `groups`, as "pid command".
pub fn alive_in_groups(groups: &[u32]) -> Vec<String> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (command) state ppid pgrp …"; the command may hold spaces and parentheses.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let (Some(state), Some(group)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if *state != "Z" && group.parse().is_ok_and(|g: u32| groups.contains(&g)) {
            alive.push(head.replace(" (", " "));
        }
    }
    alive
}

/// Waits until no process of `groups` is left, or says which are.
pub async fn assert_all_gone(groups: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = alive_in_groups(groups);
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after the test let go of them: {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dropped_cluster_leaves_no_process_behind_even_when_its_folder_went_first() {
    let (settings, _data) = test_settings().await;
    let (cluster, work) = round_robin_cluster(settings).await;
    let groups = cluster.process_groups();
    assert_eq!(groups.len(), 4, "nginx and three replicas");
    let running = alive_in_groups(&groups);
    assert!(
        running.len() >= 5,
        "nginx's master and worker and three replicas: {running:?}"
    );
    // As when a test binds `let (cluster, _work)`: the folder with nginx's pid file is removed
    // before the cluster is dropped.
    drop(work);
    drop(cluster);
    assert_all_gone(&groups).await;
}
