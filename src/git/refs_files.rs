//! `git show-ref --head` of a files-backend repository, read from its
//! files without running git.
//!
//! Backing up an unchanged repository should cost a few file reads, not a
//! git process (#10). This reader understands the shapes git itself writes
//! (`HEAD`, loose refs under `refs/`, `packed-refs`) and produces the
//! bytes `git show-ref --head` would print. Whatever it does not fully
//! understand, or where show-ref would omit a ref or fail (a null or
//! malformed object id, an invalid name, a dangling symbolic ref, a
//! symlink, a dot-file such as reftable's `refs/heads/.invalid` stub, an
//! unknown `packed-refs` trait), is `Unsupported`, and the caller runs git,
//! whose answer is the definition. Blocking I/O: call it off the async
//! threads. Never writes.
//!
//! Not checked: that each object exists. show-ref fails on a ref whose
//! object is missing (a corrupt repository); this reader lists the ref,
//! and the backup fails later when git packs the objects.

use std::collections::BTreeMap;
use std::path::Path;

use super::config_file::{read_formats, read_small_file, unsupported, Unsupported};
use super::refs::{RefLine, RefsSnapshot, RepositoryIdentity};
use super::repo::is_valid_ref_name;
use super::RefFormat;

/// A loose ref file holds an object id or `ref: <target>`; anything
/// longer is not one git wrote.
const LOOSE_LIMIT: u64 = 4096;

/// `packed-refs` of a repository with millions of refs is a few hundred
/// MiB; beyond this, git reads it better than a `Vec` does.
const PACKED_LIMIT: u64 = 512 * 1024 * 1024;

/// Traits git writes in the `# pack-refs with:` header.
const KNOWN_TRAITS: &[&str] = &["peeled", "fully-peeled", "sorted"];

/// Per-worktree refs live under these prefixes; git treats them apart.
const PER_WORKTREE: &[&str] = &["refs/bisect/", "refs/worktree/", "refs/rewritten/"];

/// What a ref file says: an object id, or the name of another ref.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Object(String),
    Symbolic(String),
}

/// The refs of `repository` exactly as `git show-ref --head` prints them,
/// or why only git can tell.
pub fn read_refs(repository: &Path) -> Result<RefsSnapshot, Unsupported> {
    read_refs_and_identity(repository).map(|(refs, _)| refs)
}

/// The refs, as `read_refs` gives them, and the identity a backup records,
/// from one read of `config` and `HEAD`: an unchanged repository's backup
/// costs these few file reads and nothing else.
pub fn read_repository(
    repository: &Path,
) -> Result<(RefsSnapshot, RepositoryIdentity), Unsupported> {
    match read_refs_and_identity(repository)? {
        (refs, Some(identity)) => Ok((refs, identity)),
        (_, None) => Err(unsupported("HEAD points to a symbolic ref")),
    }
}

/// The refs, and the identity unless only git can tell it.
fn read_refs_and_identity(
    repository: &Path,
) -> Result<(RefsSnapshot, Option<RepositoryIdentity>), Unsupported> {
    let (object_format, ref_format) = read_formats(repository)?;
    if ref_format != RefFormat::Files || repository.join("reftable").exists() {
        return Err(unsupported("reftable ref storage"));
    }
    let hex_len = object_format.hex_len();
    // HEAD first, as show-ref resolves it before listing the other refs.
    let head = read_value(&repository.join("HEAD"), hex_len)?
        .ok_or_else(|| unsupported("no HEAD file"))?;
    if matches!(&head, Value::Symbolic(target) if !target.starts_with("refs/")) {
        return Err(unsupported("HEAD points outside refs/"));
    }
    // Loose refs strictly before packed-refs, as git reads them, so that a
    // concurrent `git pack-refs` (Gitaly's housekeeping) cannot hide a ref.
    // pack-refs first commits the new packed-refs (a rename) holding every
    // ref it packs, and only then deletes the loose files. A loose file we
    // did not find was therefore deleted before our traversal reached its
    // directory, after its ref was committed to packed-refs, and so before
    // we open packed-refs below: that packed-refs has the ref, with the
    // value it had when packed (or a later one). Read the other way round,
    // an old packed-refs and a pruned loose file would both miss it.
    // Deleting a ref also goes packed-refs first, loose file second, so a
    // deleted ref seen in either read is one that existed during the read.
    let mut loose = BTreeMap::new();
    read_loose_dir(repository, "refs", hex_len, &mut loose)?;
    let packed_text = read_packed_refs(repository)?;
    let packed = parse_packed_refs(&packed_text, hex_len)?;
    let head_object = match &head {
        Value::Object(object_id) => Some(object_id.as_str()),
        // None: an unborn branch, and show-ref prints no HEAD line.
        Value::Symbolic(target) => object_id_of(&loose, &packed, target, true)?,
    };
    let refs = render(head_object, &loose, &packed)?;
    let head_reference = match head {
        // HEAD to a symbolic ref: which of the two names a backup records
        // is git's to say.
        Value::Symbolic(target) if matches!(loose.get(&target), Some(Value::Symbolic(_))) => {
            return Ok((refs, None))
        }
        Value::Symbolic(target) => Some(target),
        // A detached HEAD names no branch; its object is the refs' HEAD line.
        Value::Object(_) => None,
    };
    let identity = RepositoryIdentity {
        object_format,
        ref_format,
        head_reference,
    };
    Ok((refs, Some(identity)))
}

/// Reads every loose ref under `dir` (relative to the repository) into
/// `refs`. `.lock` files are skipped, as git does: they are refs being
/// written, whose old value is still in place.
fn read_loose_dir(
    repository: &Path,
    dir: &str,
    hex_len: usize,
    refs: &mut BTreeMap<String, Value>,
) -> Result<(), Unsupported> {
    let path = repository.join(dir);
    if dir == "refs" && !std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
        return Err(unsupported("refs is not a directory"));
    }
    let entries = match std::fs::read_dir(&path) {
        Ok(entries) => entries,
        // Emptied and removed by pack-refs since its parent was listed.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && dir != "refs" => {
            return Ok(());
        }
        Err(error) => return Err(unsupported(format!("{}: {error}", path.display()))),
    };
    for entry in entries {
        let entry = entry.map_err(|error| unsupported(format!("{}: {error}", path.display())))?;
        let file_name = entry.file_name();
        let name = file_name
            .to_str()
            .ok_or_else(|| unsupported("a ref name is not UTF-8"))?;
        if name.ends_with(".lock") {
            continue;
        }
        let full_name = format!("{dir}/{name}");
        if name.starts_with('.') {
            return Err(unsupported(format!("{full_name} starts with a dot")));
        }
        let file_type = entry
            .file_type()
            .map_err(|error| unsupported(format!("{full_name}: {error}")))?;
        if file_type.is_dir() {
            read_loose_dir(repository, &full_name, hex_len, refs)?;
        } else if file_type.is_file() {
            check_name(&full_name)?;
            // None: deleted since the listing; see the race in `read_refs`.
            let bytes = read_loose_file(&repository.join(&full_name))?;
            if let Some(value) = bytes
                .map(|b| parse_value(&b, &full_name, hex_len))
                .transpose()?
            {
                refs.insert(full_name, value);
            }
        } else {
            return Err(unsupported(format!("{full_name} is not a regular file")));
        }
    }
    Ok(())
}

/// A ref name show-ref would print as is.
fn check_name(name: &str) -> Result<(), Unsupported> {
    if !is_valid_ref_name(name) || PER_WORKTREE.iter().any(|p| name.starts_with(p)) {
        return Err(unsupported(format!("unusual ref name {name:?}")));
    }
    Ok(())
}

/// A loose ref or HEAD file; `None` when it does not exist.
fn read_value(path: &Path, hex_len: usize) -> Result<Option<Value>, Unsupported> {
    let Some(bytes) = read_small_file(path, LOOSE_LIMIT)? else {
        return Ok(None);
    };
    parse_value(&bytes, &path.display().to_string(), hex_len).map(Some)
}

/// A loose ref file the directory listing said is a regular file; `None`
/// when it no longer exists. Opened without following a symlink put there
/// since, and read without a `stat`: with thousands of loose refs, the
/// system calls per file are the cost.
fn read_loose_file(path: &Path) -> Result<Option<Vec<u8>>, Unsupported> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let odd = |error: std::io::Error| unsupported(format!("{}: {error}", path.display()));
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(odd(error)),
    };
    let mut buffer = [0u8; LOOSE_LIMIT as usize + 1];
    let mut length = 0;
    loop {
        match file.read(&mut buffer[length..]).map_err(odd)? {
            0 => break,
            read => length += read,
        }
        if length == buffer.len() {
            return Err(unsupported(format!("{}: too large", path.display())));
        }
    }
    Ok(Some(buffer[..length].to_vec()))
}

/// `<object id>\n` or `ref: <target>\n`, exactly as git writes them.
fn parse_value(bytes: &[u8], what: &str, hex_len: usize) -> Result<Value, Unsupported> {
    let odd = || unsupported(format!("{what} is not a ref git wrote"));
    let text = std::str::from_utf8(bytes).map_err(|_| odd())?;
    let text = text.strip_suffix('\n').ok_or_else(odd)?;
    if let Some(target) = text.strip_prefix("ref: ") {
        check_name(target)?;
        return Ok(Value::Symbolic(target.to_owned()));
    }
    check_object_id(text, hex_len).map_err(|_| odd())?;
    Ok(Value::Object(text.to_owned()))
}

/// Lowercase hex of the repository's hash, not all zeros (show-ref fails
/// on a null id).
fn check_object_id(text: &str, hex_len: usize) -> Result<(), Unsupported> {
    let hex = text.len() == hex_len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex || text.bytes().all(|b| b == b'0') {
        return Err(unsupported(format!("unusual object id {text:?}")));
    }
    Ok(())
}

/// `packed-refs` as text, empty when it does not exist.
fn read_packed_refs(repository: &Path) -> Result<String, Unsupported> {
    let bytes = read_small_file(&repository.join("packed-refs"), PACKED_LIMIT)?;
    String::from_utf8(bytes.unwrap_or_default()).map_err(|_| unsupported("packed-refs not UTF-8"))
}

/// The `(name, object id)` pairs of `packed-refs`, sorted by name. Peeled
/// lines (`^<oid>`, the object an annotated tag points at) are checked and
/// skipped: show-ref without `-d` does not print them.
fn parse_packed_refs(text: &str, hex_len: usize) -> Result<Vec<(&str, &str)>, Unsupported> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| unsupported("packed-refs lacks its last newline"))?;
    let mut lines = body.split('\n').peekable();
    let mut sorted = false;
    if let Some(traits) = lines
        .peek()
        .and_then(|l| l.strip_prefix("# pack-refs with:"))
    {
        for name in traits.split(' ').filter(|name| !name.is_empty()) {
            if !KNOWN_TRAITS.contains(&name) {
                return Err(unsupported(format!("packed-refs trait {name:?}")));
            }
            sorted |= name == "sorted";
        }
        lines.next();
    }
    let mut refs: Vec<(&str, &str)> = Vec::new();
    for line in lines {
        if let Some(peeled) = line.strip_prefix('^') {
            if refs.is_empty() {
                return Err(unsupported("packed-refs has a stray peeled line"));
            }
            check_object_id(peeled, hex_len)?;
            continue;
        }
        let (object_id, name) = line
            .split_once(' ')
            .ok_or_else(|| unsupported(format!("packed-refs line {line:?}")))?;
        check_object_id(object_id, hex_len)?;
        check_name(name)?;
        // git trusts a file that says it is sorted; one that is not would
        // confuse its merge with the loose refs.
        if sorted && refs.last().is_some_and(|(previous, _)| *previous >= name) {
            return Err(unsupported("packed-refs is not sorted as it claims"));
        }
        refs.push((name, object_id));
    }
    if !sorted {
        refs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if refs.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(unsupported("packed-refs lists a ref twice"));
        }
    }
    Ok(refs)
}

/// The object id `name` stands for: loose wins over packed, and with
/// `follow`, a loose symbolic ref takes its target's id, as show-ref
/// prints it. `None` when there is no such ref. A target that is itself
/// symbolic or missing is left to git (it would follow the chain, or omit
/// the dangling ref).
fn object_id_of<'a>(
    loose: &'a BTreeMap<String, Value>,
    packed: &[(&'a str, &'a str)],
    name: &str,
    follow: bool,
) -> Result<Option<&'a str>, Unsupported> {
    match loose.get(name) {
        Some(Value::Object(object_id)) => Ok(Some(object_id)),
        Some(Value::Symbolic(target)) if follow => object_id_of(loose, packed, target, false)?
            .map(Some)
            .ok_or_else(|| unsupported(format!("{name} points at a missing ref"))),
        Some(Value::Symbolic(_)) => Err(unsupported(format!("{name} is a symbolic ref chain"))),
        None => Ok(packed
            .binary_search_by(|(packed_name, _)| (*packed_name).cmp(name))
            .ok()
            .map(|index| packed[index].1)),
    }
}

/// show-ref's output: HEAD, then every ref in byte order of its full name
/// (how git sorts), loose and packed merged with loose winning.
fn render(
    head: Option<&str>,
    loose: &BTreeMap<String, Value>,
    packed: &[(&str, &str)],
) -> Result<RefsSnapshot, Unsupported> {
    let mut lines = Vec::with_capacity(loose.len() + packed.len() + 1);
    let mut push = |object_id: &str, name: &str| {
        lines.push(RefLine {
            object_id: object_id.to_owned(),
            name: name.to_owned(),
        });
    };
    if let Some(object_id) = head {
        push(object_id, "HEAD");
    }
    let mut loose_refs = loose.keys().map(String::as_str).peekable();
    let mut packed_refs = packed.iter().peekable();
    loop {
        let take_loose = match (loose_refs.peek(), packed_refs.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(&loose_name), Some(&&(packed_name, _))) => loose_name <= packed_name,
        };
        if take_loose {
            let name = loose_refs.next().expect("peeked above");
            if packed_refs
                .peek()
                .is_some_and(|(packed_name, _)| *packed_name == name)
            {
                packed_refs.next();
            }
            let object_id =
                object_id_of(loose, packed, name, true)?.expect("a loose name resolves or errs");
            push(object_id, name);
        } else {
            let (name, object_id) = packed_refs.next().expect("peeked above");
            push(object_id, name);
        }
    }
    let mut bytes = Vec::with_capacity(lines.len() * 80);
    for line in &lines {
        bytes.extend_from_slice(line.object_id.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(line.name.as_bytes());
        bytes.push(b'\n');
    }
    Ok(RefsSnapshot { bytes, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_refs_parse_or_are_left_to_git() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let header = "# pack-refs with: peeled fully-peeled sorted \n";
        let text = format!("{header}{a} refs/heads/x\n{b} refs/tags/v\n^{a}\n");
        let refs = parse_packed_refs(&text, 40).unwrap();
        assert_eq!(
            refs,
            vec![("refs/heads/x", a.as_str()), ("refs/tags/v", &b)]
        );
        let unsorted = format!("{b} refs/tags/v\n{a} refs/heads/x\n");
        assert_eq!(parse_packed_refs(&unsorted, 40).unwrap(), refs);
        for odd in [
            format!("{header}^{a}\n{a} refs/heads/x\n"),
            format!("{a} refs/heads/x\n{a} refs/heads/x\n"),
            format!("{header}{b} refs/tags/v\n{a} refs/heads/x\n"),
            format!("{a} refs/heads/x\r\n"),
            format!("{a} refs/heads/x"),
            format!("{a}  refs/heads/x\n"),
            format!("{} refs/heads/x\n", "0".repeat(40)),
            format!("{} refs/heads/x\n", "A".repeat(40)),
            format!("{} refs/heads/x\n", "a".repeat(64)),
            format!("{a} HEAD\n"),
            format!("# pack-refs with: peeled future\n{a} refs/heads/x\n"),
            format!("# comment\n{a} refs/heads/x\n"),
        ] {
            assert!(parse_packed_refs(&odd, 40).is_err(), "{odd:?}");
        }
    }

    #[test]
    fn loose_values_parse_or_are_left_to_git() {
        let a = "a".repeat(40);
        let value = parse_value(format!("{a}\n").as_bytes(), "x", 40).unwrap();
        assert_eq!(value, Value::Object(a.clone()));
        let value = parse_value(b"ref: refs/heads/main\n", "x", 40).unwrap();
        assert_eq!(value, Value::Symbolic("refs/heads/main".into()));
        for odd in [
            a.clone(),
            format!("{a} \n"),
            format!("{a}\n\n"),
            "ref:refs/heads/main\n".into(),
            "ref: HEAD\n".into(),
            "ref: refs/heads/.invalid\n".into(),
            format!("{}\n", "0".repeat(40)),
        ] {
            assert!(parse_value(odd.as_bytes(), "x", 40).is_err(), "{odd:?}");
        }
    }
}
