//! The shared libraries a dynamically linked program loads: its ELF interpreter and the
//! closure of `DT_NEEDED` entries, found where the dynamic loader looks (`DT_RUNPATH`/`RPATH`,
//! then the multiarch and standard library directories). Statically linked programs need none.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A library that cannot be found or a file that is not ELF.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file it concerns.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: std::io::Error,
    },
    /// The file is not an ELF binary.
    #[error("{path} is not an ELF file: {reason}")]
    NotElf {
        /// The file it concerns.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A needed library is nowhere the loader would look.
    #[error("{library} (needed by {by}) is not in any library directory; install it")]
    Missing {
        /// The library's soname.
        library: String,
        /// The file that needs it.
        by: PathBuf,
    },
}

struct Needs {
    interpreter: Option<String>,
    libraries: Vec<String>,
    search: Vec<PathBuf>,
    triple: &'static str,
}

fn read_needs(path: &Path) -> Result<Needs, ElfError> {
    let bytes = std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.into(),
        source,
    })?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| ElfError::NotElf {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let origin = path.parent().unwrap_or(Path::new("/"));
    let search = elf
        .runpaths
        .iter()
        .chain(elf.rpaths.iter())
        .flat_map(|p| p.split(':'))
        .map(|p| PathBuf::from(p.replace("$ORIGIN", &origin.display().to_string())))
        .collect();
    let triple = match elf.header.e_machine {
        goblin::elf::header::EM_X86_64 => "x86_64-linux-gnu",
        goblin::elf::header::EM_AARCH64 => "aarch64-linux-gnu",
        goblin::elf::header::EM_ARM => "arm-linux-gnueabihf",
        goblin::elf::header::EM_386 => "i386-linux-gnu",
        _ => "",
    };
    Ok(Needs {
        interpreter: elf.interpreter.map(str::to_string),
        libraries: elf.libraries.iter().map(|s| s.to_string()).collect(),
        search,
        triple,
    })
}

fn find(lib: &str, needs: &Needs, by: &Path) -> Result<PathBuf, ElfError> {
    let mut dirs = needs.search.clone();
    if !needs.triple.is_empty() {
        dirs.push(format!("/lib/{}", needs.triple).into());
        dirs.push(format!("/usr/lib/{}", needs.triple).into());
    }
    dirs.extend(["/lib64", "/usr/lib64", "/lib", "/usr/lib"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(lib))
        .find(|p| p.is_file())
        .ok_or_else(|| ElfError::Missing {
            library: lib.into(),
            by: by.into(),
        })
}

/// The files `program` loads at start: its interpreter and every shared library it needs,
/// directly or through other libraries, as the paths the loader finds them at. Empty for a
/// static program.
pub fn shared_libraries(program: &Path) -> Result<BTreeSet<PathBuf>, ElfError> {
    let mut out = BTreeSet::new();
    let mut todo = vec![program.to_path_buf()];
    let mut seen_names = BTreeSet::new();
    while let Some(file) = todo.pop() {
        let needs = read_needs(&file)?;
        if let Some(interp) = &needs.interpreter {
            out.insert(PathBuf::from(interp));
            // libc names the loader as needed too; the loaded interpreter satisfies it.
            if let Some(name) = Path::new(interp).file_name() {
                seen_names.insert(name.to_string_lossy().into_owned());
            }
        }
        for lib in &needs.libraries {
            if !seen_names.insert(lib.clone()) {
                continue;
            }
            let path = find(lib, &needs, &file)?;
            out.insert(path.clone());
            todo.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closure_matches_ldd() {
        let ldd = std::process::Command::new("ldd").arg("/bin/ls").output();
        let Ok(ldd) = ldd else {
            eprintln!("ldd is not installed; skipping");
            return;
        };
        let want: BTreeSet<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let path = match l.split_once("=>") {
                    Some((_, rest)) => rest.split_whitespace().next()?,
                    None => l.split_whitespace().next()?,
                };
                path.starts_with('/').then(|| PathBuf::from(path))
            })
            .collect();
        assert_eq!(shared_libraries(Path::new("/bin/ls")).unwrap(), want);
        assert!(shared_libraries(Path::new("/bin/busybox"))
            .unwrap()
            .is_empty());
        assert!(shared_libraries(Path::new("/etc/hostname")).is_err());
    }
}
