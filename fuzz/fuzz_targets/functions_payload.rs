//! FUNCTION RESTORE payloads as `kiln::rdb::decode_functions_payload` reads them.
//!
//! The input is tried as it is (length, version and CRC checks), and with a valid CRC-64
//! appended (so the fuzzer reaches the records; its last two bytes are the RDB version).
//! Asserts: no panic, no allocation beyond the input's worth; libraries that decode come
//! back identical from their own FUNCTION DUMP payload, with and without LZF, and that
//! payload, with its trailer stripped and put in a file between the header and EOF, reads
//! back as the same libraries through the file reader.
#![no_main]

use kiln::rdb::{crc, decode_functions_payload, encode_functions_payload_with, Reader, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_functions_payload(data);

    let mut payload = data.to_vec();
    payload.extend_from_slice(&crc::crc64(data).to_le_bytes());
    let Ok(codes) = decode_functions_payload(&payload) else {
        return;
    };
    for compress in [false, true] {
        let again = encode_functions_payload_with(&codes, compress);
        let back = decode_functions_payload(&again)
            .unwrap_or_else(|e| panic!("own FUNCTION DUMP refused: {e:?}"));
        assert_eq!(back, codes);

        let mut file = b"REDIS0010".to_vec();
        file.extend_from_slice(&again[..again.len() - 10]);
        file.push(kiln::rdb::opcode::EOF);
        let c = crc::crc64(&file);
        file.extend_from_slice(&c.to_le_bytes());
        let mut rd = Reader::new(&file[..]).expect("own header");
        let mut read = Vec::new();
        loop {
            match rd.next_record() {
                Ok(Record::Function(code)) => read.push(code),
                Ok(Record::End) => break,
                other => panic!("unexpected in own file: {other:?}"),
            }
        }
        assert_eq!(read, codes);
    }
});
