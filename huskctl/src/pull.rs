//! `huskctl pull` (and `run --pull`): the agent pulls; this shows its
//! progress, a bar per layer on a terminal, plain lines otherwise (a CI
//! log must not fill with redraws).

use std::collections::HashMap;
use std::io::IsTerminal;

use husk_api::images::{IMAGES_PULL_PATH, ImageSummary, PullEvent, PullRequest};
use husk_api::{Client, ClientError, Method};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The short form Docker shows a layer by.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// `1.2MB`, as Docker's progress lines.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// How the progress is shown.
trait Display {
    fn event(&mut self, event: &PullEvent);
}

/// Where the progress goes: stdout for `pull`, stderr for `run` (whose
/// stdout is the container's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

impl Output {
    fn line(self, text: String) {
        match self {
            Self::Stdout => println!("{text}"),
            Self::Stderr => eprintln!("{text}"),
        }
    }

    fn is_terminal(self) -> bool {
        match self {
            Self::Stdout => std::io::stdout().is_terminal(),
            Self::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// One line per event that matters (not every progress tick).
struct Lines(Output);

impl Display for Lines {
    fn event(&mut self, event: &PullEvent) {
        let out = self.0;
        match event {
            PullEvent::Resolved {
                reference,
                digest,
                layers,
                size,
            } => out.line(format!(
                "{reference}: {digest}, {layers} {}, {}",
                if *layers == 1 { "layer" } else { "layers" },
                human(*size)
            )),
            PullEvent::Verified { rule, detail } => {
                out.line(format!("verified: {detail} ({rule})"))
            }
            PullEvent::LayerExists { digest, .. } => {
                out.line(format!("{}: already exists", short(digest)))
            }
            PullEvent::LayerRetry {
                digest,
                attempt,
                reason,
            } => out.line(format!("{}: retrying ({attempt}): {reason}", short(digest))),
            PullEvent::LayerDone { digest, size } => {
                out.line(format!(
                    "{}: pull complete ({})",
                    short(digest),
                    human(*size)
                ));
            }
            PullEvent::LayerProgress { .. } | PullEvent::Done { .. } | PullEvent::Error { .. } => {}
        }
    }
}

/// A bar per layer.
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn bar(&mut self, digest: &str, size: u64) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(digest.to_owned()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(size));
            let style = ProgressStyle::with_template(
                "{prefix}: {msg:<16} [{bar:30}] {bytes}/{total_bytes}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(short(digest).to_owned());
            bar.set_message("waiting");
            bar
        })
    }
}

impl Display for Bars {
    fn event(&mut self, event: &PullEvent) {
        match event {
            PullEvent::Resolved {
                reference, digest, ..
            } => {
                let _ = self.multi.println(format!("{reference}: {digest}"));
            }
            PullEvent::Verified { rule, detail } => {
                let _ = self.multi.println(format!("verified: {detail} ({rule})"));
            }
            PullEvent::LayerExists { digest, size } => {
                let bar = self.bar(digest, *size);
                bar.set_position(*size);
                bar.finish_with_message("already exists");
            }
            PullEvent::LayerProgress { digest, done, size } => {
                let bar = self.bar(digest, *size);
                bar.set_message("downloading");
                bar.set_position(*done);
            }
            PullEvent::LayerRetry {
                digest, attempt, ..
            } => {
                let bar = self.bar(digest, 0);
                bar.set_message(format!("retrying ({attempt})"));
            }
            PullEvent::LayerDone { digest, size } => {
                let bar = self.bar(digest, *size);
                bar.set_position(*size);
                bar.finish_with_message("pull complete");
            }
            PullEvent::Done { .. } | PullEvent::Error { .. } => {}
        }
    }
}

/// Pulls `reference` through the agent, showing progress; the image and
/// its verified digest, or the agent's reason.
pub async fn pull(
    client: &Client,
    reference: &str,
    platform: Option<String>,
    output: Output,
) -> Result<(String, ImageSummary), ClientError> {
    let request = PullRequest {
        reference: reference.to_owned(),
        platform,
    };
    let body = serde_json::to_vec(&request)?;
    let mut display: Box<dyn Display> = if output.is_terminal() {
        let target = match output {
            Output::Stdout => ProgressDrawTarget::stdout(),
            Output::Stderr => ProgressDrawTarget::stderr(),
        };
        Box::new(Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
        })
    } else {
        Box::new(Lines(output))
    };
    let mut outcome = None;
    client
        .stream(
            Method::POST,
            IMAGES_PULL_PATH,
            Some(body),
            |event: PullEvent| {
                display.event(&event);
                match event {
                    PullEvent::Done {
                        digest,
                        image,
                        layers_fetched,
                    } => outcome = Some(Ok((digest, image, layers_fetched))),
                    PullEvent::Error { message } => outcome = Some(Err(message)),
                    _ => {}
                }
            },
        )
        .await?;
    match outcome {
        Some(Ok((digest, image, fetched))) => {
            output.line(format!("Digest: {digest}"));
            let name = image.names.first().map_or(reference, String::as_str);
            output.line(if fetched == 0 {
                format!("Status: image is up to date for {name} ({})", image.id)
            } else {
                format!("Status: downloaded {name} ({})", image.id)
            });
            Ok((digest, image))
        }
        Some(Err(message)) => Err(ClientError::Failed(message)),
        None => Err(ClientError::Failed(
            "the agent's pull stream ended without an outcome".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_short_digests() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(1_500), "1.5kB");
        assert_eq!(human(104_857_600), "104.9MB");
        assert_eq!(short("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
