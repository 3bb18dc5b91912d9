//! Just enough of the WebAssembly binary format to carry claims: walk the
//! top-level sections of a core module or a component (both share the same
//! outer framing), drop the claims section, and append a new one.
//!
//! The walk is deliberately shallow. Claims live in a top-level custom
//! section, and the module hash covers every other byte exactly as it was
//! written, so nothing below the top level needs to be understood.

use std::ops::Range;

use crate::ClaimsError;

/// Name of the custom section that carries the claims token.
pub const CLAIMS_SECTION: &str = "wasmcloud_jwt";
/// Older name of the same section, still read (never written).
pub const LEGACY_CLAIMS_SECTION: &str = "jwt";

const MAGIC: &[u8; 4] = b"\0asm";
const HEADER_LEN: usize = 8;
const CUSTOM_SECTION_ID: u8 = 0;

/// What kind of binary the bytes are, from the preamble's version field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core WebAssembly module.
    Module,
    /// A Component Model component.
    Component,
}

/// One top-level section: where it lies in the file and, for custom
/// sections, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    /// The whole section, id byte and size included.
    bytes: Range<usize>,
    /// The section's contents after the custom section name.
    payload: Range<usize>,
    custom_name: Option<String>,
}

impl Section {
    fn is_claims(&self) -> bool {
        matches!(
            self.custom_name.as_deref(),
            Some(CLAIMS_SECTION | LEGACY_CLAIMS_SECTION)
        )
    }
}

/// Reads the preamble and says whether this is a module or a component.
pub fn kind(bytes: &[u8]) -> Result<WasmKind, ClaimsError> {
    if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
        return Err(ClaimsError::InvalidWasm(
            "missing the `\\0asm` preamble; is this a .wasm file?".into(),
        ));
    }
    match bytes[4..HEADER_LEN] {
        [1, 0, 0, 0] => Ok(WasmKind::Module),
        [0x0d, 0x00, 0x01, 0x00] => Ok(WasmKind::Component),
        ref other => Err(ClaimsError::InvalidWasm(format!(
            "unsupported binary version {other:02x?}"
        ))),
    }
}

fn read_u32_leb(bytes: &[u8], pos: &mut usize) -> Result<u32, ClaimsError> {
    let mut result: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*pos).ok_or_else(|| truncated(*pos))?;
        *pos += 1;
        let low = u32::from(byte & 0x7f);
        if shift == 28 && low > 0x0f {
            return Err(ClaimsError::InvalidWasm(format!(
                "LEB128 value at byte {} overflows 32 bits",
                *pos - 1
            )));
        }
        result |= low << shift;
        if byte & 0x80 == 0 {
            return Ok(result);
        }
    }
    Err(ClaimsError::InvalidWasm(format!(
        "LEB128 value ending at byte {} is longer than 5 bytes",
        *pos
    )))
}

fn truncated(at: usize) -> ClaimsError {
    ClaimsError::InvalidWasm(format!("the file is truncated at byte {at}"))
}

fn sections(bytes: &[u8]) -> Result<Vec<Section>, ClaimsError> {
    kind(bytes)?;
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = read_u32_leb(bytes, &mut pos)? as usize;
        let end = pos.checked_add(size).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| truncated(bytes.len()))?;
        let mut payload = pos..end;
        let mut custom_name = None;
        if id == CUSTOM_SECTION_ID {
            let mut name_pos = pos;
            let name_len = read_u32_leb(&bytes[..end], &mut name_pos)? as usize;
            let name_end = name_pos
                .checked_add(name_len)
                .filter(|&e| e <= end)
                .ok_or_else(|| truncated(end))?;
            let name = std::str::from_utf8(&bytes[name_pos..name_end]).map_err(|_| {
                ClaimsError::InvalidWasm(format!(
                    "custom section at byte {start} has a non-UTF-8 name"
                ))
            })?;
            custom_name = Some(name.to_owned());
            payload = name_end..end;
        }
        out.push(Section {
            bytes: start..end,
            payload,
            custom_name,
        });
        pos = end;
    }
    Ok(out)
}

/// Names of the top-level custom sections, in file order.
pub fn custom_section_names(bytes: &[u8]) -> Result<Vec<String>, ClaimsError> {
    Ok(sections(bytes)?
        .into_iter()
        .filter_map(|s| s.custom_name)
        .collect())
}

/// The bytes with every claims section removed: what the module hash covers.
pub fn strip_claims(bytes: &[u8]) -> Result<Vec<u8>, ClaimsError> {
    let sections = sections(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    for section in sections.iter().filter(|s| !s.is_claims()) {
        out.extend_from_slice(&bytes[section.bytes.clone()]);
    }
    Ok(out)
}

/// The claims token embedded in the bytes, if any. When both the current
/// and the legacy section are present the current one wins; when a section
/// repeats, the last one wins, as it would for a tool appending claims.
pub fn find_claims(bytes: &[u8]) -> Result<Option<String>, ClaimsError> {
    let sections = sections(bytes)?;
    let pick = |name: &str| {
        sections
            .iter()
            .rev()
            .find(|s| s.custom_name.as_deref() == Some(name))
    };
    let Some(section) = pick(CLAIMS_SECTION).or_else(|| pick(LEGACY_CLAIMS_SECTION)) else {
        return Ok(None);
    };
    let token = std::str::from_utf8(&bytes[section.payload.clone()])
        .map_err(|_| ClaimsError::MalformedToken("the claims section is not UTF-8".into()))?;
    Ok(Some(token.trim().to_owned()))
}

/// Appends `value` to `out` as unsigned LEB128, the encoding of every
/// length and index in the binary format.
pub fn write_u32_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a custom section; the caller has already stripped any old one.
pub fn append_custom_section(bytes: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    write_u32_leb(&mut body, name.len() as u32);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    append_section(bytes, CUSTOM_SECTION_ID, &body);
}

/// Appends a section with id `id` and `contents` to a module or component.
pub fn append_section(bytes: &mut Vec<u8>, id: u8, contents: &[u8]) {
    bytes.push(id);
    write_u32_leb(bytes, contents.len() as u32);
    bytes.extend_from_slice(contents);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest valid core module with one (type) section in it.
    pub(crate) fn tiny_module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
        m
    }

    #[test]
    fn leb128_round_trips_at_every_width() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            let mut buf = Vec::new();
            write_u32_leb(&mut buf, value);
            let mut pos = 0;
            assert_eq!(read_u32_leb(&buf, &mut pos).unwrap(), value);
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn appended_section_is_found_and_stripped() {
        let module = tiny_module();
        let mut signed = module.clone();
        append_custom_section(&mut signed, CLAIMS_SECTION, b"a.b.c");
        assert_eq!(find_claims(&signed).unwrap().as_deref(), Some("a.b.c"));
        assert_eq!(strip_claims(&signed).unwrap(), module);
    }

    #[test]
    fn legacy_section_is_read_but_current_wins() {
        let mut bytes = tiny_module();
        append_custom_section(&mut bytes, LEGACY_CLAIMS_SECTION, b"old");
        assert_eq!(find_claims(&bytes).unwrap().as_deref(), Some("old"));
        append_custom_section(&mut bytes, CLAIMS_SECTION, b"new");
        assert_eq!(find_claims(&bytes).unwrap().as_deref(), Some("new"));
        assert_eq!(strip_claims(&bytes).unwrap(), tiny_module());
    }

    #[test]
    fn other_custom_sections_are_kept() {
        let mut bytes = tiny_module();
        append_custom_section(&mut bytes, "producers", b"x");
        let kept = bytes.clone();
        append_custom_section(&mut bytes, CLAIMS_SECTION, b"t");
        assert_eq!(strip_claims(&bytes).unwrap(), kept);
    }

    #[test]
    fn hostile_bytes_give_errors_not_panics() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"\0asm".to_vec(),
            b"\x7fELF\x01\0\0\0".to_vec(),
            b"\0asm\x02\0\0\0".to_vec(),
            b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f".to_vec(),
            b"\0asm\x01\0\0\0\x01\x80\x80\x80\x80\x80\x01".to_vec(),
            b"\0asm\x01\0\0\0\x00\x02\x05ab".to_vec(),
            b"\0asm\x01\0\0\0\x00\x03\x02\xff\xfe".to_vec(),
        ];
        for case in cases {
            assert!(strip_claims(&case).is_err(), "{case:02x?}");
        }
    }

    #[test]
    fn component_preamble_is_recognised() {
        assert_eq!(kind(b"\0asm\x0d\0\x01\0").unwrap(), WasmKind::Component);
        assert_eq!(kind(&tiny_module()).unwrap(), WasmKind::Module);
    }
}
