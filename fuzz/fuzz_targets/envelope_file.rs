//! Any byte string, down the path a `'file'` message takes: the envelope decoder, then the
//! fileManager message reader. Never panics; whatever reads as a file message writes back
//! to contents that read as the same message.
#![no_main]

use ecci_proto::envelope::Envelope;
use ecci_proto::file::FileMessage;
use ecci_proto::pickle::DecodeLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::from_pickle(data, &DecodeLimits::default()) else {
        return;
    };
    if let Ok(message) = FileMessage::from_value(&envelope.contents) {
        let again = FileMessage::from_value(&message.to_value());
        assert_eq!(again.as_ref(), Ok(&message));
        let _ = message.to_envelope();
    }
});
