//! The progress line of `cowlab run`: a step that has run for a while
//! shows, on standard error, its number (as the trace numbers it) and text, how long it has run
//! and (on the model) how many pages it has handled so far; the line is
//! erased when the step ends, before its trace is printed.
//!
//! A painter thread draws the line; the running step only publishes what
//! it is (text, start time, the model's [`mm::WorkCounter`]) and the model
//! bumps the counter as it goes, so the step itself never waits for the
//! terminal. Drawing and erasing happen under one lock, so the line is
//! always gone before the step's trace reaches the screen. Nothing is
//! drawn unless standard error is a terminal (or the user forces it):
//! output captured in a file or a pipe is the same as without this module.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When to draw: `auto` on a terminal only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum When {
    Auto,
    Always,
    Never,
}

/// A step shorter than this shows nothing (most steps take microseconds:
/// a line that flashes by would only be noise).
const DELAY: Duration = Duration::from_millis(300);
/// How often a shown line is redrawn.
const TICK: Duration = Duration::from_millis(100);
/// The width used when standard error reports none (forced into a file).
const DEFAULT_WIDTH: usize = 80;

/// The step now running.
struct Running {
    step: usize,
    text: String,
    since: Instant,
    /// The model's counter and its value when the step began.
    work: Option<(mm::WorkCounter, u64)>,
}

#[derive(Default)]
struct State {
    step: Option<Running>,
    /// A line is on the screen and must be erased.
    drawn: bool,
    quit: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A painter that panicked left nothing half-written that matters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The painter thread and what it draws.
pub struct StepProgress {
    shared: Arc<Shared>,
    painter: Option<JoinHandle<()>>,
}

impl StepProgress {
    /// Starts the painter, or returns `None` when nothing is to be drawn
    /// (`never`, or `auto` with standard error not a terminal).
    pub fn start(when: When) -> Option<StepProgress> {
        let draw = match when {
            When::Auto => std::io::stderr().is_terminal(),
            When::Always => true,
            When::Never => false,
        };
        if !draw {
            return None;
        }
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let painter = std::thread::Builder::new().name("progress".into()).spawn(move || paint(&s)).ok()?;
        Some(StepProgress { shared, painter: Some(painter) })
    }

    /// Step number `step`, `text`, starts now.
    pub fn begin(&self, step: usize, text: &str, work: Option<mm::WorkCounter>) {
        let mut st = self.shared.lock();
        erase(&mut st);
        let work = work.map(|w| {
            let base = w.get();
            (w, base)
        });
        st.step = Some(Running { step, text: text.to_string(), since: Instant::now(), work });
        self.shared.wake.notify_one();
    }

    /// The step ended: its line, if shown, is erased before this returns.
    pub fn end(&self) {
        let mut st = self.shared.lock();
        st.step = None;
        erase(&mut st);
    }
}

impl Drop for StepProgress {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.quit = true;
            st.step = None;
            erase(&mut st);
        }
        self.shared.wake.notify_one();
        if let Some(p) = self.painter.take() {
            let _ = p.join();
        }
    }
}

/// The painter: sleeps until a step has run for [`DELAY`], then redraws
/// its line every [`TICK`] until it ends.
fn paint(shared: &Shared) {
    let mut st = shared.lock();
    while !st.quit {
        let wait = match &st.step {
            None => Duration::from_secs(3600),
            Some(r) => {
                let ran = r.since.elapsed();
                if ran < DELAY {
                    DELAY - ran
                } else {
                    let text = status_line(r, ran, width());
                    let mut e = std::io::stderr().lock();
                    // A terminal that cannot be written to gets no line.
                    if e.write_all(format!("\r\x1b[2K{text}").as_bytes()).and_then(|()| e.flush()).is_ok() {
                        st.drawn = true;
                    }
                    TICK
                }
            }
        };
        st = shared.wake.wait_timeout(st, wait).unwrap_or_else(|e| e.into_inner()).0;
    }
}

/// Erases a drawn line (the caller holds the lock).
fn erase(st: &mut State) {
    if st.drawn {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(b"\r\x1b[2K").and_then(|()| e.flush());
        st.drawn = false;
    }
}

/// Columns of the terminal on standard error.
fn width() -> usize {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(w) if w.ws_col > 0 => usize::from(w.ws_col),
        _ => DEFAULT_WIDTH,
    }
}

/// `[step] text  12.3 s  45678 pages`, the text cut so that the whole fits
/// in `width - 1` columns (a line that wrapped could not be erased).
fn status_line(r: &Running, ran: Duration, width: usize) -> String {
    let mut tail = format!("  {:.1} s", ran.as_secs_f64());
    if let Some((w, base)) = &r.work {
        tail.push_str(&format!("  {} pages", w.get().saturating_sub(*base)));
    }
    let head = format!("[{}] ", r.step);
    let room = width.saturating_sub(1 + head.chars().count() + tail.chars().count());
    let text: String = if r.text.chars().count() > room {
        r.text.chars().take(room.saturating_sub(1)).chain(std::iter::once('…')).collect()
    } else {
        r.text.clone()
    };
    format!("{head}{text}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(text: &str, work: Option<(mm::WorkCounter, u64)>) -> Running {
        Running { step: 7, text: text.into(), since: Instant::now(), work }
    }

    #[test]
    fn the_line_shows_step_time_and_pages_since_the_step_began() {
        let w = mm::WorkCounter::default();
        w.add(100);
        let r = running("T0: write A fill 1", Some((w.clone(), 100)));
        w.add(2048);
        assert_eq!(status_line(&r, Duration::from_millis(1500), 80), "[7] T0: write A fill 1  1.5 s  2048 pages");
        assert_eq!(status_line(&running("T0: fork", None), Duration::from_millis(400), 80), "[7] T0: fork  0.4 s");
    }

    #[test]
    fn a_long_step_text_is_cut_to_fit_the_terminal() {
        let long = format!("T0: write A bytes {}", "ab".repeat(100));
        let line = status_line(&running(&long, None), Duration::from_secs(2), 40);
        assert_eq!(line.chars().count(), 39, "{line}");
        assert!(line.starts_with("[7] T0: write A bytes abab") && line.ends_with("…  2.0 s"), "{line}");
    }
}
