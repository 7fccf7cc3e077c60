//! The local demo cluster (being written on the `e2e` branch).

/// Starts the demo cluster; not available in this build yet.
pub fn run(
    _nodes: usize,
    _goosed: &std::path::Path,
    _goosectl: &std::path::Path,
) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not available in this build")
}
