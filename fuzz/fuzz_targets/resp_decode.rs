//! The client-side RESP2/RESP3 decoder (`kiln_resp::decode`) that kiln-cli and the
//! replica link read replies with.
//!
//! Asserts: no panic; a decoded value used at least one byte and no more than given; the
//! value written back as RESP decodes to the same value; and every prefix of the input
//! says "incomplete" until the value's last byte has arrived, then gives the same value
//! (so a reader that retries as bytes arrive sees what one whole read sees).
#![no_main]

use kiln_resp::{decode, DecodeError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = decode(data);
    if let Ok((v, n)) = &whole {
        assert!(*n > 0 && *n <= data.len());
        let mut again = Vec::new();
        kiln_fuzz::encode_value(&mut again, v);
        assert_eq!(decode(&again), Ok((v.clone(), again.len())), "{again:?}");
    }
    // Every prefix up to 256 bytes, then a few dozen spread over the rest.
    let step = (data.len() / 64).max(1);
    let cuts = (0..data.len().min(256)).chain((256..data.len()).step_by(step));
    for k in cuts {
        let part = decode(&data[..k]);
        match (&whole, &part) {
            (Ok((_, n)), Err(DecodeError::Incomplete)) if k < *n => {}
            (Ok((_, n)), Ok(_)) if k >= *n => assert_eq!(&part, &whole),
            (Err(DecodeError::Incomplete), Err(DecodeError::Incomplete)) => {}
            (Err(DecodeError::Invalid(_)), Err(_)) => {}
            _ => panic!("prefix {k}: {part:?}, whole: {whole:?}"),
        }
    }
});
