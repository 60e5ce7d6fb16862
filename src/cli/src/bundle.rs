//! What `claw deploy` uploads: the file's type (from its extension), and for code, the
//! module(s) to send. TypeScript and code with imports are bundled by esbuild into one ES
//! module; a plain single-file `.js`/`.mjs` goes as it is.
//!
//! Why esbuild: it is what wrangler bundles Workers with (the same resolution of packages,
//! the `workerd`/`worker`/`browser` export conditions, the same output), it resolves and
//! inlines imports (Rust crates such as oxc or swc strip types file by file but do not
//! resolve `node_modules`), and the project already installs it from npm. It is found at
//! `CLAW_ESBUILD`, else in `node_modules` walking up from the working directory and from
//! the `claw` binary's own location (its native package `@esbuild/<os>-<arch>` first, then
//! `node_modules/.bin/esbuild`), else on `PATH`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a file holds, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `.js`, `.mjs`: an ES module.
    JavaScript,
    /// `.ts`, `.mts`: bundled by esbuild.
    TypeScript,
    /// `.csv`: a dataset.
    Csv,
    /// `.json`: a dataset.
    Json,
}

impl Source {
    pub fn detect(path: &Path) -> Result<Source, String> {
        let ext = path
            .extension()
            .and_then(OsStr::to_str)
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("js" | "mjs") => Ok(Source::JavaScript),
            Some("ts" | "mts") => Ok(Source::TypeScript),
            Some("csv") => Ok(Source::Csv),
            Some("json") => Ok(Source::Json),
            _ => Err(format!(
                "{}: cannot tell what to deploy; expected a .js, .mjs, .ts, .csv or .json file",
                path.display()
            )),
        }
    }

    /// A dataset (the platform generates its Worker) rather than code.
    pub fn is_dataset(self) -> bool {
        matches!(self, Source::Csv | Source::Json)
    }

    /// The content type of the upload part for this file as it is.
    pub fn content_type(self) -> &'static str {
        match self {
            Source::JavaScript | Source::TypeScript => "application/javascript+module",
            Source::Csv => "text/csv",
            Source::Json => "application/json",
        }
    }
}

/// Whether an ES module imports anything (statically, dynamically or by re-export), by a
/// look at its statements: then it is bundled. A false positive costs a bundling step,
/// never a broken upload.
pub fn has_imports(source: &str) -> bool {
    source.lines().any(|line| {
        let l = line.trim_start();
        let starts = |p: &str| {
            l.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with([' ', '{', '*', '"', '\'', '\t']))
        };
        starts("import")
            || (starts("export")
                && (l.contains(" from ") || l.contains("from\"") || l.contains("from'")))
            || l.contains("import(")
            || l.contains("require(")
    })
}

/// The esbuild package holding the native binary for this machine.
fn native_package() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("@esbuild/linux-x64"),
        ("linux", "aarch64") => Some("@esbuild/linux-arm64"),
        ("macos", "x86_64") => Some("@esbuild/darwin-x64"),
        ("macos", "aarch64") => Some("@esbuild/darwin-arm64"),
        _ => None,
    }
}

/// Where esbuild might be under `dir`'s `node_modules`, best first.
fn candidates_in(dir: &Path) -> Vec<PathBuf> {
    let nm = dir.join("node_modules");
    let mut c = Vec::new();
    if let Some(pkg) = native_package() {
        c.push(nm.join(pkg).join("bin").join("esbuild"));
    }
    c.push(nm.join(".bin").join("esbuild"));
    c
}

/// Finds esbuild: `explicit` (`CLAW_ESBUILD`), then `node_modules` up from each of `starts`,
/// then each directory of `path_var`. `exists` is the file test (a parameter for tests).
pub fn find_esbuild(
    explicit: Option<&str>,
    starts: &[&Path],
    path_var: Option<&OsStr>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    if let Some(e) = explicit.filter(|e| !e.is_empty()) {
        let p = PathBuf::from(e);
        return if exists(&p) {
            Ok(p)
        } else {
            Err(format!("CLAW_ESBUILD names {e}, which does not exist"))
        };
    }
    for start in starts {
        for dir in start.ancestors() {
            if let Some(found) = candidates_in(dir).into_iter().find(|c| exists(c)) {
                return Ok(found);
            }
        }
    }
    if let Some(path) = path_var {
        for dir in std::env::split_paths(path) {
            let p = dir.join("esbuild");
            if exists(&p) {
                return Ok(p);
            }
        }
    }
    Err(
        "esbuild not found: TypeScript and code with imports are bundled with esbuild. \
         Run `npm install esbuild` in your project, or set CLAW_ESBUILD to its binary"
            .into(),
    )
}

/// esbuild's arguments for one Worker module, written to stdout: an ES module bundle for
/// workerd, as wrangler builds one (neutral platform, the Workers export conditions).
pub fn esbuild_args(entry: &Path) -> Vec<String> {
    vec![
        entry.display().to_string(),
        "--bundle".into(),
        "--format=esm".into(),
        "--platform=neutral".into(),
        "--target=es2022".into(),
        "--main-fields=module,main".into(),
        "--conditions=workerd,worker,browser".into(),
        "--log-level=warning".into(),
        "--charset=utf8".into(),
    ]
}

/// Runs esbuild on `entry` and returns the bundle.
pub fn run_esbuild(esbuild: &Path, entry: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(esbuild)
        .args(esbuild_args(entry))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", esbuild.display()))?;
    if !out.status.success() {
        return Err(format!(
            "esbuild failed on {}:\n{}",
            entry.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    if !out.stderr.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// The module name a source uploads as: `worker.ts` bundles into `worker.js`.
pub fn module_name(path: &Path, source: Source) -> Result<String, String> {
    let stem = path
        .file_stem()
        .and_then(OsStr::to_str)
        .ok_or_else(|| format!("{}: the file name is not UTF-8", path.display()))?;
    let name = path
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or_else(|| format!("{}: the file name is not UTF-8", path.display()))?;
    Ok(match source {
        Source::TypeScript => format!("{stem}.js"),
        _ => name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_type_from_the_extension() {
        let d = |p: &str| Source::detect(Path::new(p));
        assert_eq!(d("a/worker.js"), Ok(Source::JavaScript));
        assert_eq!(d("worker.MJS"), Ok(Source::JavaScript));
        assert_eq!(d("src/index.ts"), Ok(Source::TypeScript));
        assert_eq!(d("cities.csv"), Ok(Source::Csv));
        assert_eq!(d("data.json"), Ok(Source::Json));
        assert!(d("worker.py").is_err());
        assert!(d("Makefile").is_err());
        assert!(d("worker.cjs").is_err());
        assert!(Source::Csv.is_dataset() && Source::Json.is_dataset());
        assert!(!Source::TypeScript.is_dataset());
        assert_eq!(Source::Csv.content_type(), "text/csv");
        assert_eq!(
            Source::JavaScript.content_type(),
            "application/javascript+module"
        );
    }

    #[test]
    fn module_names() {
        let m = |p: &str, s| module_name(Path::new(p), s).unwrap();
        assert_eq!(m("src/index.ts", Source::TypeScript), "index.js");
        assert_eq!(m("w.mjs", Source::JavaScript), "w.mjs");
        assert_eq!(m("/tmp/cities.csv", Source::Csv), "cities.csv");
    }

    #[test]
    fn spots_imports() {
        assert!(!has_imports(
            "export default { fetch() { return new Response('hi') } }"
        ));
        assert!(!has_imports(
            "// important\nconst important = 1;\nexport default {};"
        ));
        assert!(has_imports(
            "import { x } from './x.js';\nexport default {};"
        ));
        assert!(has_imports("  import x from \"x\";"));
        assert!(has_imports("import './side-effect.js';"));
        assert!(has_imports("import * as m from 'm';"));
        assert!(has_imports("export { a } from './a.js';"));
        assert!(has_imports("export * from './a.js';"));
        assert!(has_imports("const m = await import('./m.js');"));
        assert!(!has_imports("export { a };"));
    }

    #[test]
    fn finds_esbuild_in_order() {
        let native = native_package().map(|p| format!("/proj/node_modules/{p}/bin/esbuild"));
        let files: Vec<String> = [
            "/proj/node_modules/.bin/esbuild".to_owned(),
            "/opt/claw/node_modules/.bin/esbuild".to_owned(),
            "/usr/bin/esbuild".to_owned(),
            "/explicit/esbuild".to_owned(),
        ]
        .into_iter()
        .chain(native.clone())
        .collect();
        let exists = |p: &Path| files.iter().any(|f| Path::new(f) == p);
        let path_var = std::ffi::OsString::from("/nowhere:/usr/bin");
        let find =
            |explicit, starts: &[&Path]| find_esbuild(explicit, starts, Some(&path_var), &exists);
        // Explicit wins, and a wrong explicit path is an error (not a silent fallback).
        assert_eq!(
            find(Some("/explicit/esbuild"), &[Path::new("/proj/src")]),
            Ok(PathBuf::from("/explicit/esbuild"))
        );
        assert!(find(Some("/missing"), &[Path::new("/proj")]).is_err());
        // Walking up from the working directory: the native binary first.
        let want = native.map_or(
            PathBuf::from("/proj/node_modules/.bin/esbuild"),
            PathBuf::from,
        );
        assert_eq!(find(None, &[Path::new("/proj/src/deep")]), Ok(want));
        // Then from the binary's own location.
        assert_eq!(
            find(None, &[Path::new("/elsewhere"), Path::new("/opt/claw/bin")]),
            Ok(PathBuf::from("/opt/claw/node_modules/.bin/esbuild"))
        );
        // Then PATH.
        assert_eq!(
            find(None, &[Path::new("/elsewhere")]),
            Ok(PathBuf::from("/usr/bin/esbuild"))
        );
        assert!(find_esbuild(None, &[Path::new("/elsewhere")], None, &exists).is_err());
    }

    #[test]
    fn esbuild_makes_one_es_module_for_workerd() {
        let args = esbuild_args(Path::new("src/index.ts"));
        assert_eq!(args[0], "src/index.ts");
        for a in [
            "--bundle",
            "--format=esm",
            "--conditions=workerd,worker,browser",
        ] {
            assert!(args.iter().any(|x| x == a), "{a}");
        }
        // No --outfile: the bundle comes back on stdout, nothing is written beside the source.
        assert!(!args.iter().any(|x| x.starts_with("--outfile")));
    }
}
