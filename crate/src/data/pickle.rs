//! A small, safe unpickler for the one pickle the lab needs: the class-name
//! dictionary stored as a 0-d object array in `imagenet_val_25.npz`.
//!
//! It interprets pickle opcodes (protocols 0-5, the subset numpy emits) and
//! knows only the few globals numpy uses to rebuild a `dict[int, numpy.str_]`:
//! `numpy.core.multiarray._reconstruct`, `numpy.ndarray`, `numpy.dtype`,
//! `numpy.core.multiarray.scalar` and `_codecs.encode`. Nothing is executed;
//! any other global is an error naming it.

use std::path::Path;

use crate::error::{Error, Result};

/// A value on the unpickler's stack.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// `numpy.dtype(name)`, with its byte order once `BUILD` has set it.
    Dtype {
        name: String,
        big_endian: bool,
    },
    /// `numpy.ndarray` under reconstruction; `items` is its object payload.
    Array(Vec<Value>),
    Mark,
}

/// Decodes the pickle payload of an object-dtype `.npy` file holding a dict of
/// class names (`{0: "tench, Tinca tinca", ...}`) into a vector indexed by key,
/// `0..=max key`. A key missing from the dict gets the name `"class {i}"`: the
/// lab's own `label_map` has 999 entries and lacks 134 (ImageNet's bird
/// "crane", whose name it shares with class 517, the machine).
///
/// `path` only names the source in error messages.
pub(crate) fn class_names_from_pickle(bytes: &[u8], path: &Path) -> Result<Vec<String>> {
    let value = Unpickler {
        bytes,
        pos: 0,
        path,
    }
    .run()?;
    let bad = |what: String| Error::format(path, what);
    let dict = match value {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        Value::Dict(_) => value,
        other => {
            return Err(bad(format!(
                "expected a 0-d object array, found {}",
                kind(&other)
            )))
        }
    };
    let Value::Dict(entries) = dict else {
        return Err(bad(format!(
            "expected a dict of class names, found {}",
            kind(&dict)
        )));
    };
    let mut by_index = std::collections::BTreeMap::new();
    for (key, value) in entries {
        let (Value::Int(k), Value::Str(name)) = (&key, value) else {
            return Err(bad(format!(
                "expected int -> str entries, found key {key:?}"
            )));
        };
        let k = usize::try_from(*k)
            .ok()
            .filter(|&k| k < MAX_CLASSES)
            .ok_or_else(|| bad(format!("class index {k} outside 0..{MAX_CLASSES}")))?;
        by_index.insert(k, name);
    }
    let n = by_index.keys().next_back().map_or(0, |k| k + 1);
    Ok((0..n)
        .map(|i| by_index.remove(&i).unwrap_or_else(|| format!("class {i}")))
        .collect())
}

/// A bound on class indices, so a corrupt key cannot allocate without limit.
const MAX_CLASSES: usize = 1 << 20;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(..) => "global",
        Value::Dtype { .. } => "dtype",
        Value::Array(_) => "ndarray",
        Value::Mark => "mark",
    }
}

struct Unpickler<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Unpickler<'a> {
    fn err(&self, what: impl Into<String>) -> Error {
        Error::format(
            self.path,
            format!("pickle at byte {}: {}", self.pos, what.into()),
        )
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.err(format!("truncated: {n} more bytes expected")))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("truncated: unterminated text line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value> {
        let raw = self.take(n)?;
        let s = std::str::from_utf8(raw).map_err(|e| self.err(format!("bad UTF-8: {e}")))?;
        Ok(Value::Str(s.to_owned()))
    }

    fn run(mut self) -> Result<Value> {
        let mut stack: Vec<Value> = Vec::new();
        let mut memo: Vec<Option<Value>> = Vec::new();
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!("unsupported protocol {proto}")));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint.
                }
                b'.' => {
                    return stack
                        .pop()
                        .ok_or_else(|| self.err("STOP on an empty stack"));
                }
                b'(' => stack.push(Value::Mark),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b')' => stack.push(Value::Tuple(Vec::new())),
                b']' => stack.push(Value::List(Vec::new())),
                b'}' => stack.push(Value::Dict(Vec::new())),
                b'K' => {
                    let v = self.u8()?;
                    stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    stack.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    if n > 8 {
                        return Err(self.err(format!("LONG1 of {n} bytes does not fit i64")));
                    }
                    let raw = self.take(n)?;
                    let mut buf = [0u8; 8];
                    buf[..n].copy_from_slice(raw);
                    if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 {
                        buf[n..].fill(0xff);
                    }
                    stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.utf8(n)?;
                    stack.push(v);
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.utf8(n)?;
                    stack.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = usize::try_from(n).map_err(|_| self.err("string too long"))?;
                    let v = self.utf8(n)?;
                    stack.push(v);
                }
                b'C' => {
                    let n = usize::from(self.u8()?);
                    stack.push(Value::Bytes(self.take(n)?.to_vec()));
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    stack.push(Value::Bytes(self.take(n)?.to_vec()));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop(&mut stack)?;
                    let module = self.pop(&mut stack)?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'q' => {
                    let i = usize::from(self.u8()?);
                    self.put(&stack, &mut memo, i)?;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.le()?) as usize;
                    self.put(&stack, &mut memo, i)?;
                }
                0x94 => {
                    let i = memo.len();
                    self.put(&stack, &mut memo, i)?;
                }
                b'h' => {
                    let i = usize::from(self.u8()?);
                    stack.push(self.get(&memo, i)?);
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.le()?) as usize;
                    stack.push(self.get(&memo, i)?);
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if stack.len() < n {
                        return Err(self.err("TUPLE on a short stack"));
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Value::Tuple(items));
                }
                b't' => {
                    let items = self.pop_mark(&mut stack)?;
                    stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let item = self.pop(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::List(l)) => l.push(item),
                        _ => return Err(self.err("APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::List(l)) => l.extend(items),
                        _ => return Err(self.err("APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let value = self.pop(&mut stack)?;
                    let key = self.pop(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::Dict(d)) => d.push((key, value)),
                        _ => return Err(self.err("SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark(&mut stack)?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("SETITEMS with an odd number of items"));
                    }
                    let Some(Value::Dict(d)) = stack.last_mut() else {
                        return Err(self.err("SETITEMS on a non-dict"));
                    };
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'R' => {
                    let args = self.pop(&mut stack)?;
                    let func = self.pop(&mut stack)?;
                    let v = self.reduce(func, args)?;
                    stack.push(v);
                }
                b'b' => {
                    let state = self.pop(&mut stack)?;
                    let target = self.pop(&mut stack)?;
                    let v = self.build(target, state)?;
                    stack.push(v);
                }
                other => {
                    return Err(self.err(format!("unsupported opcode 0x{other:02x}")));
                }
            }
        }
    }

    fn pop(&self, stack: &mut Vec<Value>) -> Result<Value> {
        match stack.pop() {
            Some(Value::Mark) | None => Err(self.err("stack underflow")),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&self, stack: &mut Vec<Value>) -> Result<Vec<Value>> {
        let mark = stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = stack.split_off(mark + 1);
        stack.pop();
        Ok(items)
    }

    fn put(&self, stack: &[Value], memo: &mut Vec<Option<Value>>, i: usize) -> Result<()> {
        let top = stack
            .last()
            .ok_or_else(|| self.err("PUT on an empty stack"))?;
        if i > 1 << 24 {
            return Err(self.err(format!("memo index {i} too large")));
        }
        if memo.len() <= i {
            memo.resize(i + 1, None);
        }
        memo[i] = Some(top.clone());
        Ok(())
    }

    fn get(&self, memo: &[Option<Value>], i: usize) -> Result<Value> {
        memo.get(i)
            .cloned()
            .flatten()
            .ok_or_else(|| self.err(format!("GET of unset memo slot {i}")))
    }

    fn reduce(&self, func: Value, args: Value) -> Result<Value> {
        let Value::Global(module, name) = &func else {
            return Err(self.err(format!("REDUCE on a {}", kind(&func))));
        };
        let Value::Tuple(args) = args else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        match (module.as_str(), name.as_str(), args.as_slice()) {
            ("_codecs", "encode", [Value::Str(s), Value::Str(enc)]) if enc == "latin1" => s
                .chars()
                .map(|c| u8::try_from(u32::from(c)))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map(Value::Bytes)
                .map_err(|_| self.err("non-latin1 character in _codecs.encode")),
            ("numpy", "dtype", [Value::Str(name), ..]) => Ok(Value::Dtype {
                name: name.clone(),
                big_endian: false,
            }),
            (m, "_reconstruct", _) if is_multiarray(m) => Ok(Value::Array(Vec::new())),
            (m, "scalar", [Value::Dtype { name, big_endian }, Value::Bytes(raw)])
                if is_multiarray(m) =>
            {
                self.scalar(name, *big_endian, raw)
            }
            _ => Err(self.err(format!(
                "unsupported call {module}.{name} with {} argument(s)",
                args.len()
            ))),
        }
    }

    fn scalar(&self, dtype: &str, big_endian: bool, raw: &[u8]) -> Result<Value> {
        if dtype.starts_with('U') {
            if raw.len() % 4 != 0 {
                return Err(self.err(format!("{dtype} payload of {} bytes", raw.len())));
            }
            let chars: std::result::Result<String, _> = raw
                .chunks_exact(4)
                .map(|c| {
                    let c: [u8; 4] = c.try_into().expect("chunks of 4");
                    let u = if big_endian {
                        u32::from_be_bytes(c)
                    } else {
                        u32::from_le_bytes(c)
                    };
                    char::from_u32(u).ok_or(u)
                })
                .filter(|c| *c != Ok('\0'))
                .collect();
            return chars
                .map(Value::Str)
                .map_err(|u| self.err(format!("invalid code point {u:#x} in {dtype}")));
        }
        if let Some(width) = dtype
            .strip_prefix('i')
            .and_then(|w| w.parse::<usize>().ok())
        {
            if raw.len() == width && width <= 8 {
                let mut buf = [0u8; 8];
                if big_endian {
                    buf[8 - width..].copy_from_slice(raw);
                    return Ok(Value::Int(i64::from_be_bytes(buf) >> (64 - 8 * width)));
                }
                buf[..width].copy_from_slice(raw);
                return Ok(Value::Int(
                    i64::from_le_bytes(buf) << (64 - 8 * width) >> (64 - 8 * width),
                ));
            }
        }
        Err(self.err(format!("unsupported numpy scalar of dtype {dtype}")))
    }

    fn build(&self, target: Value, state: Value) -> Result<Value> {
        match (target, state) {
            (Value::Dtype { name, .. }, Value::Tuple(state)) => {
                let big_endian = matches!(state.get(1), Some(Value::Str(o)) if o == ">");
                Ok(Value::Dtype { name, big_endian })
            }
            (Value::Array(_), Value::Tuple(state)) => match state.as_slice() {
                [_version, _shape, _dtype, _fortran, Value::List(items)] => {
                    Ok(Value::Array(items.clone()))
                }
                _ => Err(self.err("ndarray state is not (version, shape, dtype, fortran, list)")),
            },
            (t, _) => Err(self.err(format!("BUILD on a {}", kind(&t)))),
        }
    }
}

fn is_multiarray(module: &str) -> bool {
    matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &[u8]) -> Result<Vec<String>> {
        class_names_from_pickle(bytes, Path::new("test.pkl"))
    }

    // pickle.dumps({1: 'b', 0: 'a'}, protocol=2)
    const PLAIN_DICT: &[u8] =
        b"\x80\x02}q\x00(K\x01X\x01\x00\x00\x00bq\x01K\x00X\x01\x00\x00\x00aq\x02u.";

    #[test]
    fn plain_dict_of_strings() {
        assert_eq!(names(PLAIN_DICT).unwrap(), ["a", "b"]);
    }

    #[test]
    fn truncated_stream_is_an_error_naming_the_byte() {
        let err = names(&PLAIN_DICT[..PLAIN_DICT.len() - 3]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("test.pkl") && msg.contains("truncated"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_global_is_refused() {
        // pickle.dumps(os.system) style: GLOBAL 'os system', then call it.
        let evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let msg = names(evil).unwrap_err().to_string();
        assert!(msg.contains("unsupported call os.system"), "{msg}");
    }

    #[test]
    fn gap_in_class_indices_gets_a_placeholder_name() {
        // {0: 'a', 2: 'c'}
        let gap = b"\x80\x02}(K\x00X\x01\x00\x00\x00aK\x02X\x01\x00\x00\x00cu.";
        assert_eq!(names(gap).unwrap(), ["a", "class 1", "c"]);
        // {-1: 'a'}
        let negative = b"\x80\x02}(J\xff\xff\xff\xffX\x01\x00\x00\x00au.";
        let msg = names(negative).unwrap_err().to_string();
        assert!(msg.contains("class index -1 outside"), "{msg}");
    }

    #[test]
    fn numpy_str_scalar_decodes_utf32() {
        let u = Unpickler {
            bytes: &[],
            pos: 0,
            path: Path::new("x"),
        };
        let raw: Vec<u8> = "hé"
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let mut padded = raw.clone();
        padded.extend([0u8; 4]);
        assert_eq!(
            u.scalar("U3", false, &padded).unwrap(),
            Value::Str("hé".into())
        );
        assert_eq!(
            u.scalar("i8", false, &(-5i64).to_le_bytes()).unwrap(),
            Value::Int(-5)
        );
    }
}
