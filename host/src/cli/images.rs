//! `pull`, `images`, `rmi`: the host's images.

use anyhow::bail;
use pinkerton::progress::human_size;

use super::table;
use crate::pull_progress;
use host_api::client::Client;
use host_api::PullMessage;

/// Pulls `image`, drawing progress on stderr (bars on a terminal, lines otherwise).
pub async fn pull(c: &Client, image: &str) -> anyhow::Result<()> {
    let progress = pinkerton::progress::stderr_progress();
    let mut stream = c.pull(image).await?;
    while let Some(msg) = stream.next().await? {
        match msg {
            PullMessage::Pulled { image } => {
                eprintln!("pulled {} ({})", image.name, image.id);
                return Ok(());
            }
            PullMessage::Error { error } => bail!("pull failed: {}", error.message),
            other => progress(pull_progress::to_event(other)?),
        }
    }
    bail!("the daemon ended the pull of {image} without a result")
}
/// `images`.
pub async fn images(c: &Client, json: bool) -> anyhow::Result<i32> {
    let images = c.images().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&images)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let short =
                i.id.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
            vec![i.name.clone(), short, human_size(i.size)]
        })
        .collect();
    table::print(&["NAME", "IMAGE ID", "SIZE"], &rows);
    Ok(0)
}

/// `rmi`.
pub async fn rmi(c: &Client, images: &[String]) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in images {
        match c.delete_image(name).await {
            Ok(removed) => removed
                .iter()
                .for_each(|i| println!("deleted {} ({})", i.name, i.id)),
            Err(e) => {
                eprintln!("Error: {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}
