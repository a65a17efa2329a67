//! Concurrency: 2, 4 and 8 processes on one vault at once.
//!
//! - `put` of distinct names, all processes started together, several rounds;
//! - `rotate` of one name with `--generate --apply HOOK`, all started together.
//!   The hook stands for the system the credential lives in: it logs when it
//!   ran and the value it applied. The value applied last must be the one the
//!   vault reveals, and no two rotations that both said "active" may have had
//!   their hooks running at the same time (then both believed they were the
//!   one rotation, and one of them was wrong);
//! - `put` and `rotate` from N-1 processes while one more process loops
//!   revealing unseals (each of which moves the vault to a new epoch).
//!
//! At the end of each: integrity check, `audit verify`, and every value a
//! command reported as stored reveals with the current epoch's quorum.
//! Figures: operations / lost or unrevealable secrets / errors other than a
//! clear "busy, try again" (counted apart).

use std::collections::BTreeMap;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::harness::{
    self, audit_verify, by_mode, first_error, integrity, is_busy, snapshot, strings, Examples, Rig,
};

#[derive(Default)]
struct Figures {
    operations: usize,
    lost: usize,
    other_errors: usize,
    busy: usize,
    concurrent_successes: usize,
    corruptions: usize,
}

impl Figures {
    fn count_failure(&mut self, what: &str, out: &Output, examples: &mut Examples) {
        if is_busy(&String::from_utf8_lossy(&out.stderr)) {
            self.busy += 1;
        } else {
            self.other_errors += 1;
            examples.add(format!("{what}: {}", first_error(out)));
        }
    }

    fn line(&self, scenario: &str, processes: usize, seconds: f64) -> String {
        format!(
            "concurrency | {scenario} | {processes} processes | operations {} | lost or unrevealable {} | errors other than busy {} | busy {} | rotations that said active while another one's hook ran {} | corruptions {} | {seconds:.0} s ({})",
            self.operations,
            self.lost,
            self.other_errors,
            self.busy,
            self.concurrent_successes,
            self.corruptions,
            if harness::long_mode() { "long" } else { "fast" },
        )
    }

    fn clean(&self) -> bool {
        self.lost == 0
            && self.other_errors == 0
            && self.concurrent_successes == 0
            && self.corruptions == 0
    }
}

/// Integrity, `audit verify`, and every expected (name → value) reveals it.
fn final_check(
    rig: &mut Rig,
    expected: &BTreeMap<String, String>,
    f: &mut Figures,
    examples: &mut Examples,
) {
    if let Err(e) = integrity(&rig.vault) {
        f.corruptions += 1;
        examples.add(e);
        return;
    }
    let vault = rig.vault.clone();
    if let Err(e) = audit_verify(rig, &vault) {
        f.corruptions += 1;
        examples.add(e);
    }
    let threshold = snapshot(&vault).map(|s| s.threshold).unwrap_or(2);
    let names: Vec<String> = expected.keys().cloned().collect();
    let revealed = rig.reveal(&vault, threshold, &names);
    for (name, value) in expected {
        match &revealed[name] {
            Ok((_, got)) if got == value => {}
            Ok((version, _)) => {
                f.lost += 1;
                examples.add(format!(
                    "{name}: v{version} reveals another value than the last one stored"
                ));
            }
            Err(e) => {
                f.lost += 1;
                examples.add(format!("{name}: does not reveal: {e}"));
            }
        }
    }
}

fn spawn(rig: &Rig, args: &[String]) -> Child {
    rig.command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// N processes at once, each a `put` of its own new name; several rounds.
fn puts_of_distinct_names(n: usize, examples: &mut Examples) -> Figures {
    let rounds = by_mode(2, 25);
    let mut rig = Rig::new(None);
    rig.init(2);
    let mut f = Figures::default();
    let mut expected = BTreeMap::new();
    for round in 0..rounds {
        let children: Vec<(String, String, Child)> = (0..n)
            .map(|i| {
                let name = format!("p{round}-{i}");
                let value = rig.canary("put");
                let file = rig.value_file(&value);
                let child = spawn(
                    &rig,
                    &strings(&["put", &name, "--kind", "password", "--file", &file]),
                );
                (name, value, child)
            })
            .collect();
        for (name, value, child) in children {
            let out = child.wait_with_output().unwrap();
            f.operations += 1;
            if out.status.success() {
                expected.insert(name, value);
            } else {
                f.count_failure(&format!("put {name}"), &out, examples);
            }
        }
    }
    final_check(&mut rig, &expected, &mut f, examples);
    f
}

/// One line a rotation hook logged: process index, start and end (ns), value.
struct Applied {
    process: usize,
    start: u128,
    end: u128,
    value: String,
}

fn read_hook_log(path: &std::path::Path) -> Vec<Applied> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, ' ');
            Some(Applied {
                process: parts.next()?.parse().ok()?,
                start: parts.next()?.parse().ok()?,
                end: parts.next()?.parse().ok()?,
                value: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// N processes at once rotate the same name with a generated value and a hook.
fn rotations_of_one_name(n: usize, examples: &mut Examples) -> Figures {
    let rounds = by_mode(2, 25);
    let mut rig = Rig::new(None);
    rig.init(2);
    let first = rig.canary("shared");
    rig.put("shared", &first);
    let mut f = Figures::default();
    // What the system the credential lives in holds now.
    let mut system = first;
    for round in 0..rounds {
        let log = rig.home.join(format!("hook-{round}.log"));
        let children: Vec<Child> = (0..n)
            .map(|i| {
                let hook = format!(
                    "v=$(cat); s=$(date +%s%N); sleep 0.05; e=$(date +%s%N); printf '%s %s %s %s\\n' {i} \"$s\" \"$e\" \"$v\" >> '{}'",
                    log.display()
                );
                spawn(
                    &rig,
                    &strings(&["rotate", "shared", "--generate", "--apply", &hook, "--json"]),
                )
            })
            .collect();
        let mut successes = Vec::new();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            f.operations += 1;
            if out.status.success() {
                successes.push(i);
            } else {
                f.count_failure(&format!("round {round}: rotate shared"), &out, examples);
            }
        }
        let applied = read_hook_log(&log);
        let span = |i: usize| applied.iter().find(|a| a.process == i);
        let overlaps = |i: usize, j: usize| match (span(i), span(j)) {
            (Some(a), Some(b)) => a.start < b.end && b.start < a.end,
            _ => false,
        };
        for &i in &successes {
            if let Some(&j) = successes.iter().find(|&&j| j != i && overlaps(i, j)) {
                f.concurrent_successes += 1;
                examples.add(format!(
                    "round {round}: rotation {i} said active, and rotation {j}, which also said active, ran its hook at the same time"
                ));
            }
        }
        if let Some(last) = applied.iter().max_by_key(|a| a.end) {
            system = last.value.clone();
        }
        let expected = BTreeMap::from([("shared".to_string(), system.clone())]);
        let lost_before = f.lost;
        final_check(&mut rig, &expected, &mut f, examples);
        if f.lost > lost_before {
            examples.add(format!(
                "round {round}: the system holds the value applied last (by rotation {}), the vault does not",
                applied
                    .iter()
                    .max_by_key(|a| a.end)
                    .map_or(0, |a| a.process)
            ));
            // Go on from what the vault holds, so one loss is counted once.
            let snap = snapshot(&rig.vault).unwrap();
            let vault = rig.vault.clone();
            if let Some(Ok((_, value))) = rig
                .reveal(&vault, snap.threshold, &["shared".to_string()])
                .remove("shared")
            {
                system = value;
            }
        }
    }
    f
}

/// One process loops revealing unseals of `u` (each ends the epoch) while
/// N-1 processes each `put` new names and `rotate` their own name.
fn writes_during_revealing_unseals(n: usize, examples: &mut Examples) -> Figures {
    let per_writer = by_mode(4, 30);
    let mut rig = Rig::new(None);
    rig.init(2);
    let u_value = rig.canary("revealed");
    rig.put("u", &u_value);
    let mut expected = BTreeMap::new();
    for w in 1..n {
        let value = rig.canary("rotated");
        rig.put(&format!("w{w}"), &value);
        expected.insert(format!("w{w}"), value);
    }
    // Values and files made up front: the threads only run the binary.
    let mut plans: Vec<Vec<(String, Vec<String>, String)>> = Vec::new();
    for w in 1..n {
        let mut plan = Vec::new();
        for j in 0..per_writer {
            let value = rig.canary("written");
            let file = rig.value_file(&value);
            if j % 2 == 0 {
                let name = format!("w{w}-{j}");
                plan.push((
                    name.clone(),
                    strings(&["put", &name, "--kind", "password", "--file", &file]),
                    value,
                ));
            } else {
                let name = format!("w{w}");
                plan.push((
                    name.clone(),
                    strings(&["rotate", &name, "--file", &file]),
                    value,
                ));
            }
        }
        plans.push(plan);
    }
    let mut unseal_args = strings(&[
        "unseal",
        "--reason",
        "concurrency",
        "--json",
        "--reveal",
        "u",
    ]);
    unseal_args.extend(rig.identities(2));

    let figures = Arc::new(Mutex::new(Figures::default()));
    let found = Arc::new(Mutex::new(Examples::default()));
    let stored = Arc::new(Mutex::new(expected));
    let stop = Arc::new(AtomicBool::new(false));
    let rig = Arc::new(rig);
    let unsealer = {
        let (rig, figures, found, stop) =
            (rig.clone(), figures.clone(), found.clone(), stop.clone());
        let u_value = u_value.clone();
        std::thread::spawn(move || {
            let mut unseals = 0;
            while !stop.load(Ordering::SeqCst) || unseals == 0 {
                let out = rig.command().args(&unseal_args).output().unwrap();
                unseals += 1;
                let mut f = figures.lock().unwrap();
                f.operations += 1;
                if out.status.success() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&out.stdout).unwrap_or_default();
                    if v["revealed"][0]["value"] != u_value.as_str() {
                        f.lost += 1;
                        found
                            .lock()
                            .unwrap()
                            .add("unseal revealed another value of u".into());
                    }
                } else {
                    f.count_failure("unseal --reveal u", &out, &mut found.lock().unwrap());
                }
            }
        })
    };
    let writers: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let (rig, figures, found, stored) =
                (rig.clone(), figures.clone(), found.clone(), stored.clone());
            std::thread::spawn(move || {
                for (name, args, value) in plan {
                    let out = rig.command().args(&args).output().unwrap();
                    let mut f = figures.lock().unwrap();
                    f.operations += 1;
                    if out.status.success() {
                        stored.lock().unwrap().insert(name, value);
                    } else {
                        f.count_failure(
                            &format!("{} {name}", args[0]),
                            &out,
                            &mut found.lock().unwrap(),
                        );
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    unsealer.join().unwrap();
    let mut rig = Arc::try_unwrap(rig).ok().expect("threads are done");
    let mut f = Arc::try_unwrap(figures).ok().unwrap().into_inner().unwrap();
    let expected = stored.lock().unwrap().clone();
    for e in Arc::try_unwrap(found)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap()
        .take()
    {
        examples.add(e);
    }
    final_check(&mut rig, &expected, &mut f, examples);
    f
}

fn scenario(name: &str, run: fn(usize, &mut Examples) -> Figures) {
    let mut lines = Vec::new();
    let mut examples = Examples::default();
    let mut clean = true;
    for n in [2, 4, 8] {
        let started = Instant::now();
        let f = run(n, &mut examples);
        let line = f.line(name, n, started.elapsed().as_secs_f64());
        harness::report(&line);
        clean &= f.clean();
        lines.push(line);
    }
    assert!(clean, "{}{}", lines.join("\n"), examples.text());
}

#[test]
fn concurrent_puts_of_distinct_names() {
    scenario("put of distinct names", puts_of_distinct_names);
}

#[test]
fn concurrent_rotations_of_one_name() {
    scenario("rotate of one name", rotations_of_one_name);
}

#[test]
fn puts_and_rotations_during_revealing_unseals() {
    scenario(
        "put and rotate during revealing unseals",
        writes_during_revealing_unseals,
    );
}
