//! Without the `files` feature: the file messages the client's task receives go to a drain
//! that logs and drops them, so that they never fill a queue nobody reads (which would stop
//! the task reading events).

use ecci_proto::ContainerName;
use ecci_proto::file::FileMessage;
use tokio::sync::mpsc;

/// A `{'type': 'file'}` message, as `ecci_files::InboundFile` carries it.
pub(crate) struct InboundFile {
    pub(crate) sender: ContainerName,
    pub(crate) receiver: ContainerName,
    pub(crate) message: FileMessage,
}

/// Logs and drops every file message until the client's task ends (it owns the sender).
pub(crate) async fn drain(mut files: mpsc::Receiver<InboundFile>) {
    while let Some(file) = files.recv().await {
        let InboundFile {
            sender,
            receiver,
            message,
        } = file;
        // Not the message itself: its URLs are credentials.
        log::warn!(
            "dropped the file message {} ({:?}) from {sender} to {receiver}: ecci-client is built without its `files` feature",
            message.cmd(),
            message.file_name()
        );
    }
}
