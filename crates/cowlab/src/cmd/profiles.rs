//! `cowlab knobs` and `cowlab profiles`: what `--set` and `--profile`
//! accept, with defaults, meanings and the commits behind each profile.
use super::EXIT_OK;
use mm::policy::{Policy, KNOBS, PROFILE_INFO};

/// Every policy knob: its values, the default (linux-6.18) and its meaning;
/// then the machine's size and limits.
#[derive(clap::Args)]
pub struct KnobsArgs {}

/// Every built-in profile: its knob values, the commits behind them and
/// what it leaves out.
#[derive(clap::Args)]
pub struct ProfilesArgs {}

fn knob_value(p: &Policy, knob: &str) -> &'static str {
    p.get(knob).expect("every knob of KNOBS reads back")
}

pub fn knobs(_: KnobsArgs) -> u8 {
    let default = Policy::default();
    for k in KNOBS {
        println!("{}", k.name);
        println!("    values:  {}", k.values.join(", "));
        println!("    default: {} ({})", knob_value(&default, k.name), default.profile);
        println!("    {}", k.about);
    }
    for k in mm::kernel::MACHINE_LIMITS {
        println!("{}", k.name);
        println!("    values:  {}", k.takes);
        println!("    {}", k.about);
    }
    EXIT_OK
}

pub fn profiles(_: ProfilesArgs) -> u8 {
    for info in PROFILE_INFO {
        let p = Policy::profile(info.name).expect("a profile of the table");
        println!("{}{} [{}]", info.name, if info.name == Policy::default().profile { " (default)" } else { "" }, info.arch);
        let knobs: Vec<String> = KNOBS.iter().map(|k| format!("{}={}", k.name, knob_value(&p, k.name))).collect();
        println!("    knobs: {}", knobs.join(" "));
        println!("    {}", info.about);
        for (id, title, release) in info.commits {
            println!("    commit {id} \"{title}\" ({release})");
        }
        println!("    leaves out: {}", info.leaves_out);
    }
    EXIT_OK
}
