//! Decoding of the Kubernetes protobuf bodies kubectl sends for built-in kinds
//! (`Content-Type: application/vnd.kubernetes.protobuf`), for the kinds its imperative
//! `create` commands make: Secret, ConfigMap and Namespace. Anything else is refused
//! with 415 (client-go does not fall back to JSON on its own).
//!
//! Layout (protobuf wire format, field numbers from k8s.io/api's generated.proto):
//!
//! ```text
//! body      = "k8s\0" Unknown
//! Unknown   = 1: TypeMeta { 1: apiVersion, 2: kind }   2: raw (the object)
//!             3: contentEncoding                       4: contentType
//! ObjectMeta= 1: name  2: generateName  3: namespace  11: labels (map)  12: annotations (map)
//!             (other fields are set by the server and ignored here)
//! Secret    = 1: metadata  2: data map<string,bytes>  3: type  4: stringData map  5: immutable
//! ConfigMap = 1: metadata  2: data map<string,string>  3: binaryData map<string,bytes>
//!             4: immutable
//! Namespace = 1: metadata  2: spec { 1: finalizers (repeated) }
//! map entry = 1: key  2: value
//! ```
//!
//! The reader checks every length against the remaining input, so a hostile body yields
//! an error, never a panic or an allocation larger than the body.

use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::store::base64_encode;

/// The magic prefix of Kubernetes protobuf bodies.
const MAGIC: &[u8] = b"k8s\0";

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the request body could not be decoded as protobuf: {what}"
    ))
}

/// One field of a message: its number and value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ApiError> {
        let n = usize::try_from(n).map_err(|_| bad("length out of range"))?;
        if n > self.buf.len() {
            return Err(bad("length beyond the end of the body"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Other
            }
            2 => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Other
            }
            _ => return Err(bad("unsupported wire type")),
        };
        Ok(Some((key >> 3, field)))
    }
}

/// Call `f` for each field of the message `buf`.
fn fields<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(u64, Field<'a>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut r = Reader { buf };
    while let Some((n, v)) = r.next()? {
        f(n, v)?;
    }
    Ok(())
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

/// A map entry's (key, value bytes).
fn entry(b: &[u8]) -> Result<(String, &[u8]), ApiError> {
    let (mut k, mut v): (String, &[u8]) = (String::new(), &[]);
    fields(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(x)) => k = text(x)?,
            (2, Field::Bytes(x)) => v = x,
            _ => {}
        }
        Ok(())
    })?;
    Ok((k, v))
}

fn insert_text_entry(m: &mut Map<String, Value>, b: &[u8]) -> Result<(), ApiError> {
    let (k, v) = entry(b)?;
    m.insert(k, json!(text(v)?));
    Ok(())
}

fn insert_bytes_entry(m: &mut Map<String, Value>, b: &[u8]) -> Result<(), ApiError> {
    let (k, v) = entry(b)?;
    m.insert(k, json!(base64_encode(v)));
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut meta = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    fields(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                meta.insert("name".into(), json!(text(x)?));
            }
            (2, Field::Bytes(x)) => {
                meta.insert("generateName".into(), json!(text(x)?));
            }
            (3, Field::Bytes(x)) => {
                meta.insert("namespace".into(), json!(text(x)?));
            }
            (11, Field::Bytes(x)) => insert_text_entry(&mut labels, x)?,
            (12, Field::Bytes(x)) => insert_text_entry(&mut annotations, x)?,
            _ => {}
        }
        Ok(())
    })?;
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Ok(Value::Object(meta))
}

fn put_map(o: &mut Map<String, Value>, key: &str, m: Map<String, Value>) {
    if !m.is_empty() {
        o.insert(key.into(), Value::Object(m));
    }
}

fn secret(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = Map::new();
    let (mut data, mut string_data) = (Map::new(), Map::new());
    fields(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            (2, Field::Bytes(x)) => insert_bytes_entry(&mut data, x)?,
            (3, Field::Bytes(x)) => {
                o.insert("type".into(), json!(text(x)?));
            }
            (4, Field::Bytes(x)) => insert_text_entry(&mut string_data, x)?,
            (5, Field::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
        Ok(())
    })?;
    put_map(&mut o, "data", data);
    put_map(&mut o, "stringData", string_data);
    Ok(Value::Object(o))
}

fn config_map(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = Map::new();
    let (mut data, mut binary) = (Map::new(), Map::new());
    fields(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            (2, Field::Bytes(x)) => insert_text_entry(&mut data, x)?,
            (3, Field::Bytes(x)) => insert_bytes_entry(&mut binary, x)?,
            (4, Field::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
        Ok(())
    })?;
    put_map(&mut o, "data", data);
    put_map(&mut o, "binaryData", binary);
    Ok(Value::Object(o))
}

fn namespace(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = Map::new();
    fields(b, |n, f| {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                o.insert("metadata".into(), object_meta(x)?);
            }
            (2, Field::Bytes(x)) => {
                let mut finalizers = Vec::new();
                fields(x, |n, f| {
                    if let (1, Field::Bytes(s)) = (n, f) {
                        finalizers.push(json!(text(s)?));
                    }
                    Ok(())
                })?;
                if !finalizers.is_empty() {
                    o.insert("spec".into(), json!({"finalizers": finalizers}));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(Value::Object(o))
}

/// Decode a protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let (mut api_version, mut kind, mut raw, mut encoding) =
        (String::new(), String::new(), None, String::new());
    fields(rest, |n, f| {
        match (n, f) {
            (1, Field::Bytes(tm)) => fields(tm, |n, f| {
                match (n, f) {
                    (1, Field::Bytes(x)) => api_version = text(x)?,
                    (2, Field::Bytes(x)) => kind = text(x)?,
                    _ => {}
                }
                Ok(())
            })?,
            (2, Field::Bytes(x)) => raw = Some(x),
            (3, Field::Bytes(x)) => encoding = text(x)?,
            _ => {}
        }
        Ok(())
    })?;
    if !encoding.is_empty() {
        return Err(bad(&format!(
            "content encoding {encoding:?} is not supported"
        )));
    }
    let raw = raw.unwrap_or_default();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret(raw)?,
        ("v1", "ConfigMap") => config_map(raw)?,
        ("v1", "Namespace") => namespace(raw)?,
        _ => {
            return Err(ApiError::unsupported_media_type_json(&format!(
                "application/vnd.kubernetes.protobuf ({api_version} {kind})"
            )))
        }
    };
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(n: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn map_entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes_field(1, k.as_bytes(), &mut e);
        bytes_field(2, v, &mut e);
        e
    }

    fn envelope(kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        bytes_field(1, b"v1", &mut tm);
        bytes_field(2, kind.as_bytes(), &mut tm);
        let mut body = MAGIC.to_vec();
        bytes_field(1, &tm, &mut body);
        bytes_field(2, raw, &mut body);
        bytes_field(3, b"", &mut body);
        bytes_field(4, b"", &mut body);
        body
    }

    fn meta(name: &str) -> Vec<u8> {
        let mut m = Vec::new();
        bytes_field(1, name.as_bytes(), &mut m);
        bytes_field(11, &map_entry("app", b"x"), &mut m);
        m
    }

    #[test]
    fn secret_configmap_namespace() {
        let mut s = Vec::new();
        bytes_field(1, &meta("sessions-auth"), &mut s);
        bytes_field(2, &map_entry("password", b"hunter2"), &mut s);
        bytes_field(3, b"Opaque", &mut s);
        let v = decode(&envelope("Secret", &s)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "sessions-auth", "labels": {"app": "x"}},
                "data": {"password": "aHVudGVyMg=="}})
        );
        let mut c = Vec::new();
        bytes_field(1, &meta("cfg"), &mut c);
        bytes_field(2, &map_entry("k", b"v"), &mut c);
        varint(4 << 3, &mut c);
        varint(1, &mut c);
        let v = decode(&envelope("ConfigMap", &c)).unwrap();
        assert_eq!(v["data"], json!({"k": "v"}));
        assert_eq!(v["immutable"], json!(true));
        let mut n = Vec::new();
        bytes_field(1, &meta("team-a"), &mut n);
        let v = decode(&envelope("Namespace", &n)).unwrap();
        assert_eq!(v["metadata"]["name"], "team-a");
        assert_eq!(v["kind"], "Namespace");
    }

    #[test]
    fn hostile_bodies_are_errors() {
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0").is_err()); // no kind: unsupported
        let mut huge = MAGIC.to_vec();
        varint(2 << 3 | 2, &mut huge);
        varint(u64::MAX >> 1, &mut huge);
        assert_eq!(decode(&huge).unwrap_err().code, 400);
        let mut long = MAGIC.to_vec();
        long.extend_from_slice(&[0x80; 20]);
        assert!(decode(&long).is_err());
        let mut s = Vec::new();
        bytes_field(1, &[0xff, 0xff], &mut s); // metadata that is not a message
        assert!(decode(&envelope("Secret", &s)).is_err());
        let e = decode(&envelope("Pod", &[])).unwrap_err();
        assert_eq!(e.code, 415);
    }
}
