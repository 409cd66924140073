//! Volumes on the host: listing, creating and deleting the runtime's volumes.

use host_api::Volume;

use crate::error::HostError;
use crate::host::Host;

impl Host {
    /// Every volume.
    pub fn volumes(&self) -> Result<Vec<Volume>, HostError> {
        let vols = self.runtime().volumes();
        Ok(vols
            .list()?
            .into_iter()
            .filter_map(|name| {
                let path = vols.path(&name).ok()?.display().to_string();
                Some(Volume { name, path })
            })
            .collect())
    }

    /// Creates a volume.
    pub fn create_volume(&self, name: &str) -> Result<Volume, HostError> {
        let path = self.runtime().volumes().create(name)?;
        Ok(Volume {
            name: name.to_string(),
            path: path.display().to_string(),
        })
    }

    /// Deletes a volume no job uses.
    pub async fn delete_volume(&self, name: &str) -> Result<(), HostError> {
        let rt = self.runtime().clone();
        let name = name.to_string();
        Ok(tokio::task::spawn_blocking(move || rt.delete_volume(&name)).await??)
    }
}
