//! The dump object of a backup: streamed up in parts, read back in ranges, hashed, downloaded.

use super::*;

impl BackupStore {
    /// Starts streaming a dump; the object appears only when [`DumpUpload::finish`] succeeds.
    pub async fn start_dump_upload(&self, id: BackupId) -> Result<DumpUpload, StoreError> {
        let upload = self
            .store
            .put_multipart(&self.path(id, ObjectKind::Dump))
            .await
            .map_err(|err| self.err("start the dump upload", err))?;
        Ok(DumpUpload {
            writer: WriteMultipart::new_with_chunk_size(upload, self.part_size),
            store: self.clone(),
        })
    }

    /// Size of a stored dump.
    pub async fn dump_size(&self, id: BackupId) -> Result<u64, StoreError> {
        self.store
            .head(&self.path(id, ObjectKind::Dump))
            .await
            .map(|meta| meta.size)
            .map_err(|err| self.err("look up the dump", err))
    }

    /// Reads a stored dump in bounded ranged requests, hashing it and handing each chunk to
    /// `sink`. Returns (size, sha256 hex).
    async fn read_dump(
        &self,
        id: BackupId,
        progress: &Progress,
        mut sink: Option<&mut tokio::fs::File>,
    ) -> Result<(u64, String), StoreError> {
        let path = self.path(id, ObjectKind::Dump);
        let size = self.dump_size(id).await?;
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < size {
            let end = (offset + DOWNLOAD_RANGE).min(size);
            let chunk = self
                .store
                .get_range(&path, offset..end)
                .await
                .map_err(|err| self.err("download the dump", err))?;
            hasher.update(&chunk);
            if let Some(file) = sink.as_mut() {
                file.write_all(&chunk)
                    .await
                    .map_err(|source| StoreError::LocalIo {
                        operation: "write the downloaded dump".to_owned(),
                        source,
                    })?;
            }
            offset = end;
            progress.throughput("read", offset, Some(size));
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Size and sha256 of the stored dump, read back from the destination.
    pub async fn hash_dump(
        &self,
        id: BackupId,
        progress: &Progress,
    ) -> Result<(u64, String), StoreError> {
        self.read_dump(id, progress, None).await
    }

    /// Downloads the dump into `file` and returns its size and sha256.
    pub async fn download_dump(
        &self,
        id: BackupId,
        file: &mut tokio::fs::File,
        progress: &Progress,
    ) -> Result<(u64, String), StoreError> {
        let result = self.read_dump(id, progress, Some(&mut *file)).await?;
        file.flush().await.map_err(|source| StoreError::LocalIo {
            operation: "write the downloaded dump".to_owned(),
            source,
        })?;
        Ok(result)
    }

    /// Writes the dump object from bytes in one request (tests forge backups with it).
    pub async fn put_dump_bytes(&self, id: BackupId, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store
            .put(&self.path(id, ObjectKind::Dump), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|err| self.err("write the dump", err))
    }
}

/// A dump being streamed to one destination in parts.
pub struct DumpUpload {
    writer: WriteMultipart,
    store: BackupStore,
}

impl DumpUpload {
    /// Buffers `chunk`, waiting while too many parts are in flight.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.writer
            .wait_for_capacity(UPLOAD_CONCURRENCY)
            .await
            .map_err(|err| self.store.err("upload a dump part", err))?;
        self.writer.write(chunk);
        Ok(())
    }

    /// Uploads what is buffered and publishes the object.
    pub async fn finish(self) -> Result<(), StoreError> {
        let store = self.store;
        self.writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|err| store.err("complete the dump upload", err))
    }

    /// Abandons the upload (S3 discards the parts; the local staging file is removed).
    pub async fn abort(self) {
        // Best effort: the upload failed already; a leftover is cleaned by the next prune or
        // by the bucket's lifecycle rule for incomplete multipart uploads.
        let _ = self.writer.abort().await;
    }

    pub fn destination(&self) -> &Destination {
        self.store.destination()
    }
}
