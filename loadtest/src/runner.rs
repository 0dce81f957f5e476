//! Running a scenario: in this process, or spread over worker processes (each with its own
//! open-files limit). A parent starts `processes` copies of itself with `--child <i>`;
//! each child connects its share, prints `READY`, waits for `GO <start>` on stdin (so all
//! processes start together on the machine's monotonic clock), runs, and prints its
//! partial results, with its progress timeline, as one `PARTIAL <json>` line. The parent
//! merges them.

use crate::progress::Timeline;
use crate::report::Histograms;
use crate::scenario::{self, Coordinator, Part, Sync, Target};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// A scenario with its parameters.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "scenario", rename_all = "lowercase")]
pub enum Scenario {
    /// Open connections (paced or as fast as allowed): connections/s, time to 101 and to
    /// the first message, failures by kind.
    Connect(scenario::connect::Params),
    /// Round trips through the `echo` party, one at a time per client.
    Echo(scenario::echo::Params),
    /// Receivers and senders in one `relay` room; senders at a fixed total rate.
    Fanout(scenario::fanout::FanoutParams),
    /// Many small rooms chatting: every client sends and receives.
    Rooms(scenario::fanout::RoomsParams),
    /// Hold idle connections; with --server-pid, the server's bytes per connection.
    Idle(scenario::idle::Params),
    /// A room of many connections sleeps and wakes: time from a message to the sleeping
    /// room until its first delivery.
    Wake(scenario::wake::Params),
    /// Typing into one Yjs document (a y-websocket party): keystroke updates from one
    /// sender to every other connection, timed.
    Yjs(scenario::yjs::Params),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Connect(_) => "connect",
            Scenario::Echo(_) => "echo",
            Scenario::Fanout(_) => "fanout",
            Scenario::Rooms(_) => "rooms",
            Scenario::Idle(_) => "idle",
            Scenario::Wake(_) => "wake",
            Scenario::Yjs(_) => "yjs",
        }
    }

    /// Runs this process's part; the partial results as JSON.
    pub fn run_part(&self, target: &Target, part: Part, sync: Sync) -> serde_json::Value {
        let c = Coordinator::new(target.workers, sync);
        let v = match self {
            Scenario::Connect(p) => {
                serde_json::to_value(scenario::connect::run(target, p, part, &c))
            }
            Scenario::Echo(p) => serde_json::to_value(scenario::echo::run(target, p, part, &c)),
            Scenario::Fanout(p) => serde_json::to_value(scenario::fanout::run(
                target,
                &scenario::fanout::Plan::fanout(p),
                part,
                &c,
            )),
            Scenario::Rooms(p) => serde_json::to_value(scenario::fanout::run(
                target,
                &scenario::fanout::Plan::rooms(p),
                part,
                &c,
            )),
            Scenario::Idle(p) => serde_json::to_value(scenario::idle::run(target, p, part, &c)),
            Scenario::Wake(p) => serde_json::to_value(scenario::wake::run(target, p, part, &c)),
            Scenario::Yjs(p) => serde_json::to_value(scenario::yjs::run(target, p, part, &c)),
        };
        v.unwrap_or_default()
    }

    /// Merges every part's partial results into the scenario's results and histograms.
    pub fn finish(
        &self,
        partials: &[serde_json::Value],
    ) -> Result<(serde_json::Value, Histograms), String> {
        fn all<T: serde::de::DeserializeOwned>(
            partials: &[serde_json::Value],
        ) -> Result<Vec<T>, String> {
            let mut out = Vec::new();
            for p in partials {
                out.extend(
                    serde_json::from_value::<Vec<T>>(p.clone())
                        .map_err(|e| format!("bad partial result: {e}"))?,
                );
            }
            Ok(out)
        }
        Ok(match self {
            Scenario::Connect(_) => scenario::connect::finish(&all(partials)?),
            Scenario::Echo(_) => scenario::echo::finish(&all(partials)?),
            Scenario::Fanout(p) => scenario::fanout::finish(&all(partials)?, p.duration_s),
            Scenario::Rooms(p) => scenario::fanout::finish(&all(partials)?, p.duration_s),
            Scenario::Idle(p) => scenario::idle::finish(&all(partials)?, p),
            Scenario::Wake(_) => scenario::wake::finish(&all(partials)?),
            Scenario::Yjs(p) => scenario::yjs::finish(&all(partials)?, p),
        })
    }
}

/// What a run gives: the scenario's results (the report's `results`), the histograms
/// behind their percentiles, and the progress counters over time.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub results: serde_json::Value,
    pub histograms: Histograms,
    pub timeline: Timeline,
}

/// What a child process sends back on its `PARTIAL` line.
#[derive(Debug, Serialize, Deserialize)]
struct ChildOutput {
    partial: serde_json::Value,
    timeline: Timeline,
}

/// Runs `scenario` against `target`: in this process when `target.processes` is 1, else
/// in child processes started with `child_args` plus `--child <i>`.
pub fn run(scenario: &Scenario, target: &Target, child_args: &[String]) -> Result<Outcome, String> {
    if target.processes <= 1 {
        let progress = crate::progress::report(scenario.name().to_owned());
        let partial = scenario.run_part(target, Part::WHOLE, Sync::Local);
        let timeline = progress.finish();
        let (results, histograms) = scenario.finish(&[partial])?;
        return Ok(Outcome { results, histograms, timeline });
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut children = Vec::new();
    for i in 0..target.processes {
        let child = Command::new(&exe)
            .args(child_args)
            .args(["--child", &i.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start worker process {i}: {e}"))?;
        children.push(child);
    }
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("piped stdout")).lines())
        .collect();
    for (i, lines) in readers.iter_mut().enumerate() {
        match lines.next() {
            Some(Ok(l)) if l == "READY" => {}
            other => return Err(format!("worker process {i} did not get ready: {other:?}")),
        }
    }
    let go = format!("GO {}\n", crate::now_ns() + 200_000_000);
    for c in &mut children {
        let stdin = c.stdin.as_mut().expect("piped stdin");
        stdin.write_all(go.as_bytes()).map_err(|e| format!("cannot start worker: {e}"))?;
        stdin.flush().map_err(|e| format!("cannot start worker: {e}"))?;
    }
    let mut partials = Vec::new();
    let mut timelines = Vec::new();
    for (i, lines) in readers.iter_mut().enumerate() {
        let line = lines
            .find_map(|l| l.ok().filter(|l| l.starts_with("PARTIAL ")))
            .ok_or_else(|| format!("worker process {i} ended without results"))?;
        let output: ChildOutput = serde_json::from_str(&line["PARTIAL ".len()..])
            .map_err(|e| format!("worker {i}: {e}"))?;
        partials.push(output.partial);
        timelines.push(output.timeline);
    }
    for mut c in children {
        let _ = c.wait();
    }
    let (results, histograms) = scenario.finish(&partials)?;
    Ok(Outcome { results, histograms, timeline: Timeline::merge(&timelines) })
}

/// The child side: run part `index` and print the partial results.
pub fn run_child(scenario: &Scenario, target: &Target, index: usize) {
    let part = Part { index, count: target.processes };
    let progress =
        crate::progress::report(format!("{} {}/{}", scenario.name(), index + 1, target.processes));
    let partial = scenario.run_part(target, part, Sync::Child);
    let output = ChildOutput { partial, timeline: progress.finish() };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PARTIAL {}", serde_json::to_string(&output).unwrap_or_default());
    let _ = out.flush();
}
