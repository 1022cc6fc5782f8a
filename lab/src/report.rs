//! The lab's summary: a table a teacher can read aloud, the same as Markdown with the narration,
//! and a picture of who kept their session.

use std::fmt::Write;

use super::scenario::Outcome;
use super::svg::Chart;

fn lost(outcome: &Outcome) -> usize {
    outcome.shoppers - outcome.kept_cart
}

fn verdict(outcome: &Outcome) -> &'static str {
    match lost(outcome) {
        0 => "nothing lost",
        n if n == outcome.shoppers => "everything lost",
        _ => "the dead replica's shoppers lost",
    }
}

fn restart_text(outcome: &Outcome) -> String {
    outcome
        .rolling_restart
        .map_or("-".into(), |(requests, failures)| {
            format!("{failures} failed of {requests}")
        })
}

/// The side-by-side summary as Markdown table rows, also fine to print in a terminal.
pub fn summary_table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| setup | killed | still logged in | cart intact | checked out | rolling restart | outcome |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {} | {}/{} | {}/{} | {}/{} | {} | {} |",
            o.mode.label(),
            o.killed,
            o.kept_login,
            o.shoppers,
            o.kept_cart,
            o.shoppers,
            o.checked_out,
            o.shoppers,
            restart_text(o),
            verdict(o)
        );
    }
    out
}

/// The report a teacher can project: the summary, then the story as it was told.
pub fn markdown(outcomes: &[Outcome], narration: &[String]) -> String {
    let mut out = String::from("# The sticky-session lab\n\n");
    out.push_str(
        "Replicas of the shop run behind nginx on this machine. Shoppers register and fill \
         carts, then the replica that served the first shopper's login is killed with SIGKILL.\n\n",
    );
    out.push_str(&summary_table(outcomes));
    out.push_str("\n![Who kept their session](lab-report.svg)\n\n## What happened\n\n```text\n");
    for line in narration {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("```\n");
    out
}

/// A bar per setup: green for shoppers who kept login and cart, red for those who lost them.
pub fn svg(outcomes: &[Outcome]) -> String {
    let (bar_width, row) = (360.0, 54.0);
    let mut chart = Chart::new(
        760.0,
        70.0 + row * outcomes.len() as f64,
        15,
        "Shoppers who kept login and cart after a replica was killed",
    );
    for (i, o) in outcomes.iter().enumerate() {
        let y = 55.0 + row * i as f64;
        let kept = if o.shoppers == 0 {
            0.0
        } else {
            o.kept_cart as f64 / o.shoppers as f64
        };
        chart.text(20.0, y + 18.0, "", &o.mode.label());
        chart.bar(380.0, y, bar_width * kept, 26.0, "#38a169");
        chart.bar(
            380.0 + bar_width * kept,
            y,
            bar_width * (1.0 - kept),
            26.0,
            "#e53e3e",
        );
        chart.text(
            380.0,
            y + 42.0,
            r#"font-size="13""#,
            &format!("{} kept · {} lost", o.kept_cart, lost(o)),
        );
    }
    chart.finish()
}
