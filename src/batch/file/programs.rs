//! The programs a batch file brings: read only from regular files inside
//! the batch file's directory (symbolic links resolved, then checked), at
//! most [`MAX_PROGRAM_BYTES`] each, and compiled or decoded before anything
//! runs. Errors name the file, never its bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::content_id::ContentId;
use crate::vm::Program;

use super::BatchProgram;

/// The largest program file read (an encoded program's own limits are
/// far below: about 16 MiB of code and 16 MiB of data).
pub const MAX_PROGRAM_BYTES: u64 = 64 << 20;

/// Every program of `names` (paths relative to `base`), or the first that
/// fails: (its name, why).
pub(super) fn load_all(names: &[String], base: &Path) -> Result<Vec<BatchProgram>, (String, String)> {
    names
        .iter()
        .map(|name| {
            let bytes = load(name, base).map_err(|reason| (name.clone(), reason))?;
            Ok(BatchProgram { name: name.clone(), id: ContentId::of_encoding(&bytes), bytes: Arc::new(bytes) })
        })
        .collect()
}

/// Every inline program, compiled or decoded, or the first that fails.
pub(super) fn load_inline(programs: &[super::InlineProgram]) -> Result<Vec<BatchProgram>, (String, String)> {
    programs
        .iter()
        .map(|p| {
            let bytes = inline(p).map_err(|reason| (p.name.clone(), reason))?;
            Ok(BatchProgram { name: p.name.clone(), id: ContentId::of_encoding(&bytes), bytes: Arc::new(bytes) })
        })
        .collect()
}

fn inline(program: &super::InlineProgram) -> Result<Vec<u8>, String> {
    match (&program.tel, &program.hex) {
        (Some(source), None) => {
            if source.len() as u64 > MAX_PROGRAM_BYTES {
                return Err(format!("larger than {MAX_PROGRAM_BYTES} bytes"));
            }
            let compiled = crate::tel::compile(source).map_err(|e| format!("{}:{e}", program.name))?;
            Ok(compiled.encode())
        }
        (None, Some(hex)) => {
            if hex.len() as u64 > 2 * MAX_PROGRAM_BYTES {
                return Err(format!("larger than {MAX_PROGRAM_BYTES} bytes"));
            }
            let bytes = crate::content_id::hex_decode(hex).map_err(|e| format!("hex: {e}"))?;
            Program::decode(&bytes).map_err(|e| e.to_string())?;
            Ok(bytes)
        }
        _ => Err("give exactly one of tel (TEL source) and hex (an encoded program)".into()),
    }
}

/// The inline form of program `name` (a path inside `base`, as `cvm run`
/// reads it): TEL source stays source, anything else is sent as hex.
pub fn inline_program(name: &str, base: &Path) -> Result<super::InlineProgram, String> {
    let path = confined(name, base)?;
    let bytes = read_bounded(&path)?;
    if path.extension().is_some_and(|e| e == "tel") {
        let source = String::from_utf8(bytes).map_err(|_| "the TEL source is not UTF-8 text".to_string())?;
        return Ok(super::InlineProgram { name: name.to_string(), tel: Some(source), hex: None });
    }
    Ok(super::InlineProgram { name: name.to_string(), tel: None, hex: Some(crate::content_id::hex_encode(&bytes)) })
}

/// The canonical encoding of program `name`: TEL source is compiled;
/// anything else must be a valid program encoding.
fn load(name: &str, base: &Path) -> Result<Vec<u8>, String> {
    let path = confined(name, base)?;
    let bytes = read_bounded(&path)?;
    if path.extension().is_some_and(|e| e == "tel") {
        let source = String::from_utf8(bytes).map_err(|_| "the TEL source is not UTF-8 text".to_string())?;
        let program = crate::tel::compile(&source).map_err(|e| format!("{name}:{e}"))?;
        return Ok(program.encode());
    }
    Program::decode(&bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// `name` resolved inside `base`: a relative path whose real location
/// (links followed) is a regular file under `base`'s real location.
fn confined(name: &str, base: &Path) -> Result<PathBuf, String> {
    let relative = Path::new(name);
    if name.is_empty() || relative.is_absolute() {
        return Err("program paths are relative to the batch file's directory".into());
    }
    let base_real = base.canonicalize().map_err(|e| format!("the batch file's directory: {e}"))?;
    let real = base.join(relative).canonicalize().map_err(|e| format!("cannot read it: {e}"))?;
    if !real.starts_with(&base_real) {
        return Err(format!(
            "it resolves to {}, outside the batch file's directory {}: programs are read only from inside it",
            real.display(),
            base_real.display()
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file (a device, FIFO or directory is never read as a program)".into());
    }
    Ok(real)
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PROGRAM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_PROGRAM_BYTES {
        return Err(format!("larger than {MAX_PROGRAM_BYTES} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_batch_directory_are_read() {
        let outer = tempfile::tempdir().unwrap();
        let base = outer.path().join("batch");
        std::fs::create_dir(&base).unwrap();
        let program = Program::new(vec![crate::vm::Instruction::Accept], Vec::new()).unwrap().encode();
        std::fs::write(base.join("ok.bin"), &program).unwrap();
        std::fs::write(outer.path().join("secret"), b"root:x:0:0").unwrap();
        assert_eq!(load("ok.bin", &base).unwrap(), program);
        for (name, expected) in [
            ("../secret", "outside the batch file's directory"),
            ("/etc/hostname", "relative to the batch file's directory"),
            ("/dev/zero", "relative to the batch file's directory"),
            ("missing.bin", "cannot read it"),
            (".", "not a regular file"),
        ] {
            let err = load(name, &base).unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("secret"), base.join("link.bin")).unwrap();
            std::os::unix::fs::symlink("/dev/zero", base.join("zero.bin")).unwrap();
            let err = load("link.bin", &base).unwrap_err();
            assert!(err.contains("outside") && !err.contains("72"), "{err}");
            assert!(load("zero.bin", &base).unwrap_err().contains("outside"));
        }
        std::fs::write(base.join("junk.bin"), b"root:x:0:0:root:/root:/bin/bash").unwrap();
        let err = load("junk.bin", &base).unwrap_err();
        assert!(err.contains("not a causality-vm program") && !err.contains("72") && !err.contains("root"), "{err}");
    }
}
