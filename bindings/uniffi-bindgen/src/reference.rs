//! The API reference page (docs/api-reference.md): every type, field, variant and method the
//! library exports, read from the same uniffi metadata the Kotlin and Swift generators read, with
//! the names and types each language sees and the Rust doc comments. Generated, so it cannot drift
//! from the bindings (`scripts/bindings.sh check` compares it with a fresh generation).

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{bail, Context, Result};
use camino::Utf8Path;
use heck::{ToLowerCamelCase, ToShoutySnakeCase};
use uniffi_meta::{
    ConstructorMetadata, DefaultValueMetadata, EnumMetadata, EnumShape, FieldMetadata, FnParamMetadata, LiteralMetadata,
    Metadata, MethodMetadata, ObjectImpl, RecordMetadata, TraitMethodMetadata, Type,
};

/// Where each Rust module of the FFI crate lands on the page, and under which heading.
const SECTIONS: [(&str, &str); 6] = [
    ("client", "Client, queries and load progress"),
    ("config", "Configuration, policy and device state"),
    ("events", "Events and answers"),
    ("error", "Errors"),
    ("logging", "Logging"),
    ("", "Other"),
];

pub fn run(args: &[String]) -> Result<()> {
    let [library, out] = args else { bail!("usage: uniffi-bindgen reference <library> <out.md>") };
    let items = uniffi_bindgen::macro_metadata::extract_from_library(Utf8Path::new(library))
        .with_context(|| format!("reading the uniffi metadata of {library}"))?;
    std::fs::write(out, render(&items)).with_context(|| format!("writing {out}"))
}

fn render(items: &[Metadata]) -> String {
    let mut methods: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut sections: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    let mut add = |module: &str, name: &str, text: String| {
        let section = SECTIONS.iter().position(|(suffix, _)| module.ends_with(&format!("::{suffix}"))).unwrap_or(SECTIONS.len() - 1);
        sections.entry(section).or_default().push((name.to_string(), text));
    };
    for item in items {
        match item {
            Metadata::Constructor(c) => methods.entry(&c.self_name).or_default().push(constructor(c)),
            // An object's methods and a callback interface's are listed alike, under their owner.
            Metadata::Method(MethodMetadata { self_name: owner, name, is_async, inputs, return_type, throws, docstring, .. })
            | Metadata::TraitMethod(TraitMethodMetadata { trait_name: owner, name, is_async, inputs, return_type, throws, docstring, .. }) => {
                methods.entry(owner).or_default().push(signature(
                    &name.to_lower_camel_case(),
                    *is_async,
                    inputs,
                    return_type.as_ref(),
                    throws.as_ref(),
                    docstring.as_deref(),
                ))
            }
            Metadata::Func(f) => add(&f.module_path, &f.name, {
                let mut text = format!("### `{}` (function)\n\n", f.name.to_lower_camel_case());
                text += &signature(&f.name.to_lower_camel_case(), f.is_async, &f.inputs, f.return_type.as_ref(), f.throws.as_ref(), f.docstring.as_deref());
                text
            }),
            Metadata::Record(r) => add(&r.module_path, &r.name, record(r)),
            Metadata::Enum(e) => add(&e.module_path, &e.name, enumeration(e)),
            _ => {}
        }
    }
    for item in items {
        let (module, name, kind, doc) = match item {
            Metadata::Object(o) => (&o.module_path, &o.name, "object", o.docstring.as_deref()),
            Metadata::CallbackInterface(c) => (&c.module_path, &c.name, "interface the app implements", c.docstring.as_deref()),
            _ => continue,
        };
        let mut text = format!("### `{name}` ({kind})\n\n{}", paragraph(doc));
        for method in methods.get(name.as_str()).into_iter().flatten() {
            text += method;
        }
        add(module, name, text);
    }

    let mut page = String::from(
        "# HybridFlow API reference\n\n\
         Generated from the library's uniffi metadata by `scripts/bindings.sh generate` (do not edit;\n\
         `scripts/bindings.sh check` fails when it is stale). Every type the library exports, with the\n\
         name and type Kotlin and Swift see (`Kotlin` / `Swift` where they differ) and the Rust doc\n\
         comment. Apps use the `HybridFlowClient` wrappers (Kotlin coroutines and `Flow`, Swift\n\
         async/await and `AsyncThrowingStream`; bindings/README.md), which call the `HybridFlow` object\n\
         below. Records are immutable; a field with a default can be left out.\n",
    );
    for (index, entries) in &mut sections {
        entries.sort();
        let _ = write!(page, "\n## {}\n", SECTIONS[*index].1);
        for (_, text) in entries.iter() {
            page.push('\n');
            page += text;
        }
    }
    page
}

fn record(r: &RecordMetadata) -> String {
    let mut text = format!("### `{}` (record)\n\n{}", r.name, paragraph(r.docstring.as_deref()));
    text += &fields_table(&r.fields);
    text
}

fn enumeration(e: &EnumMetadata) -> String {
    let is_error = matches!(e.shape, EnumShape::Error { .. });
    let flat = matches!(e.shape, EnumShape::Error { flat: true }) || e.variants.iter().all(|v| v.fields.is_empty());
    let kotlin_name = if is_error { e.name.replace("Error", "Exception") } else { e.name.clone() };
    let title = if kotlin_name == e.name { format!("`{}`", e.name) } else { format!("`{kotlin_name}` / `{}`", e.name) };
    let mut text = format!("### {title} ({})\n\n{}", if is_error { "error" } else { "enum" }, paragraph(e.docstring.as_deref()));
    text += "| Kotlin | Swift | meaning |\n|---|---|---|\n";
    // A flat error's variants carry only their message in Kotlin and Swift.
    let carries_fields = !matches!(e.shape, EnumShape::Error { flat: true });
    for variant in &e.variants {
        let kotlin = if flat && !is_error { variant.name.to_shouty_snake_case() } else { format!("{kotlin_name}.{}", variant.name) };
        let fields = |render: fn(&Type) -> String| {
            let listed = variant.fields.iter().filter(|_| carries_fields).map(|f| format!("{}: {}", f.name.to_lower_camel_case(), render(&f.ty)));
            let listed: Vec<String> = listed.collect();
            if listed.is_empty() { String::new() } else { format!("({})", listed.join(", ")) }
        };
        let _ = writeln!(
            text,
            "| `{kotlin}{}` | `.{}{}` | {} |",
            fields(kotlin_type),
            variant.name.to_lower_camel_case(),
            fields(swift_type),
            cell(variant.docstring.as_deref())
        );
    }
    text
}

fn fields_table(fields: &[FieldMetadata]) -> String {
    if fields.is_empty() {
        return String::new();
    }
    let mut text = String::from("| field | type | default | meaning |\n|---|---|---|---|\n");
    for f in fields {
        let _ = writeln!(
            text,
            "| `{}` | {} | {} | {} |",
            f.name.to_lower_camel_case(),
            both(&kotlin_type(&f.ty), &swift_type(&f.ty)),
            f.default.as_ref().map(|d| default_value(d, &f.ty)).unwrap_or_else(|| "required".into()),
            cell(f.docstring.as_deref())
        );
    }
    text
}

fn signature(name: &str, is_async: bool, inputs: &[FnParamMetadata], returns: Option<&Type>, throws: Option<&Type>, doc: Option<&str>) -> String {
    let kotlin = format!(
        "{}fun {name}({}){}",
        if is_async { "suspend " } else { "" },
        parameters(inputs, kotlin_type),
        returns.map(|t| format!(": {}", kotlin_type(t))).unwrap_or_default()
    );
    let swift = format!(
        "func {name}({}){}{}{}",
        parameters(inputs, swift_type),
        if is_async { " async" } else { "" },
        if throws.is_some() { " throws" } else { "" },
        returns.map(|t| format!(" -> {}", swift_type(t))).unwrap_or_default()
    );
    format!("- Kotlin `{kotlin}`<br>Swift `{swift}`<br>{}{}\n", cell(doc), throws_note(throws))
}

fn parameters(inputs: &[FnParamMetadata], render: fn(&Type) -> String) -> String {
    inputs.iter().map(|p| format!("{}: {}", p.name.to_lower_camel_case(), render(&p.ty))).collect::<Vec<_>>().join(", ")
}

fn throws_note(throws: Option<&Type>) -> String {
    throws.map(|t| format!(" Throws `{}`.", kotlin_type(t))).unwrap_or_default()
}

/// uniffi makes a constructor named `new` the class's own constructor, any other a factory:
/// a companion function in Kotlin, a static one in Swift.
fn constructor(c: &ConstructorMetadata) -> String {
    let object = Type::Object { module_path: c.module_path.clone(), name: c.self_name.clone(), imp: ObjectImpl::Struct };
    if c.name == "new" {
        return format!(
            "- Kotlin `{}({})`<br>Swift `init({})`<br>{}{}\n",
            c.self_name,
            parameters(&c.inputs, kotlin_type),
            parameters(&c.inputs, swift_type),
            cell(c.docstring.as_deref()),
            throws_note(c.throws.as_ref())
        );
    }
    let text = signature(&c.name.to_lower_camel_case(), c.is_async, &c.inputs, Some(&object), c.throws.as_ref(), c.docstring.as_deref());
    text.replacen("Kotlin `", "Kotlin `companion ", 1).replacen("Swift `", "Swift `static ", 1)
}

fn kotlin_type(ty: &Type) -> String {
    match ty {
        Type::UInt8 => "UByte".into(),
        Type::Int8 => "Byte".into(),
        Type::UInt16 => "UShort".into(),
        Type::Int16 => "Short".into(),
        Type::UInt32 => "UInt".into(),
        Type::Int32 => "Int".into(),
        Type::UInt64 => "ULong".into(),
        Type::Int64 => "Long".into(),
        Type::Float32 => "Float".into(),
        Type::Float64 => "Double".into(),
        Type::Boolean => "Boolean".into(),
        Type::String => "String".into(),
        Type::Bytes => "ByteArray".into(),
        Type::Timestamp => "java.time.Instant".into(),
        Type::Duration => "java.time.Duration".into(),
        Type::Enum { name, .. } if name.ends_with("Error") => name.replace("Error", "Exception"),
        Type::Object { name, .. } | Type::Record { name, .. } | Type::Enum { name, .. } | Type::CallbackInterface { name, .. } | Type::Custom { name, .. } => name.clone(),
        Type::Box { inner_type } => kotlin_type(inner_type),
        Type::Optional { inner_type } => format!("{}?", kotlin_type(inner_type)),
        Type::Sequence { inner_type } => format!("List<{}>", kotlin_type(inner_type)),
        Type::Set { inner_type } => format!("Set<{}>", kotlin_type(inner_type)),
        Type::Map { key_type, value_type } => format!("Map<{}, {}>", kotlin_type(key_type), kotlin_type(value_type)),
    }
}

fn swift_type(ty: &Type) -> String {
    match ty {
        Type::UInt8 => "UInt8".into(),
        Type::Int8 => "Int8".into(),
        Type::UInt16 => "UInt16".into(),
        Type::Int16 => "Int16".into(),
        Type::UInt32 => "UInt32".into(),
        Type::Int32 => "Int32".into(),
        Type::UInt64 => "UInt64".into(),
        Type::Int64 => "Int64".into(),
        Type::Float32 => "Float".into(),
        Type::Float64 => "Double".into(),
        Type::Boolean => "Bool".into(),
        Type::String => "String".into(),
        Type::Bytes => "Data".into(),
        Type::Timestamp => "Date".into(),
        Type::Duration => "TimeInterval".into(),
        Type::Object { name, .. } | Type::Record { name, .. } | Type::Enum { name, .. } | Type::CallbackInterface { name, .. } | Type::Custom { name, .. } => name.clone(),
        Type::Box { inner_type } => swift_type(inner_type),
        Type::Optional { inner_type } => format!("{}?", swift_type(inner_type)),
        Type::Sequence { inner_type } => format!("[{}]", swift_type(inner_type)),
        Type::Set { inner_type } => format!("Set<{}>", swift_type(inner_type)),
        Type::Map { key_type, value_type } => format!("[{}: {}]", swift_type(key_type), swift_type(value_type)),
    }
}

/// A default as both languages write it; `Default` is uniffi's "the type's own default".
fn default_value(default: &DefaultValueMetadata, ty: &Type) -> String {
    let literal = match default {
        DefaultValueMetadata::Literal(literal) => literal,
        DefaultValueMetadata::Default => {
            return match ty {
                Type::Optional { .. } => both("null", "nil"),
                Type::Sequence { .. } => both("listOf()", "[]"),
                Type::Boolean => "`false`".into(),
                Type::String => "`\"\"`".into(),
                Type::Record { name, .. } => format!("`{name}()`"),
                _ => "`0`".into(),
            }
        }
    };
    match literal {
        LiteralMetadata::Boolean(b) => format!("`{b}`"),
        LiteralMetadata::String(s) => format!("`{s:?}`"),
        LiteralMetadata::UInt(v, ..) => format!("`{v}`"),
        LiteralMetadata::Int(v, ..) => format!("`{v}`"),
        LiteralMetadata::Float(v, _) => format!("`{v}`"),
        LiteralMetadata::Enum(variant, ty) => {
            let kotlin = match ty {
                Type::Enum { name, .. } => format!("{name}.{}", variant.to_shouty_snake_case()),
                _ => variant.clone(),
            };
            both(&kotlin, &format!(".{}", variant.to_lower_camel_case()))
        }
        LiteralMetadata::EmptySequence => both("listOf()", "[]"),
        LiteralMetadata::EmptyMap => both("mapOf()", "[:]"),
        LiteralMetadata::EmptySet => both("setOf()", "Set()"),
        LiteralMetadata::None => both("null", "nil"),
        LiteralMetadata::Some { inner } => default_value(inner, ty),
    }
}

/// `a` when both languages write it the same, else `a` / `b`.
fn both(kotlin: &str, swift: &str) -> String {
    if kotlin == swift {
        format!("`{kotlin}`")
    } else {
        format!("`{kotlin}` / `{swift}`")
    }
}

fn paragraph(doc: Option<&str>) -> String {
    doc.map(|d| format!("{}\n\n", d.trim())).unwrap_or_default()
}

/// A doc comment on one table row: one line, pipes escaped.
fn cell(doc: Option<&str>) -> String {
    doc.map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniffi_meta::{Radix, VariantMetadata};

    fn field(name: &str, ty: Type, default: Option<DefaultValueMetadata>, doc: Option<&str>) -> FieldMetadata {
        FieldMetadata { name: name.into(), orig_name: None, ty, default, docstring: doc.map(Into::into) }
    }

    fn variant(name: &str, fields: Vec<FieldMetadata>) -> VariantMetadata {
        VariantMetadata { name: name.into(), orig_name: None, discr: None, fields, docstring: None }
    }

    #[test]
    fn each_language_sees_its_own_names_types_and_defaults() {
        let module_path = "hybridflow_ffi::config".to_string();
        let offload = Type::Enum { module_path: module_path.clone(), name: "Offload".into() };
        let items = vec![
            Metadata::Record(RecordMetadata {
                module_path: module_path.clone(),
                name: "AppPolicy".into(),
                orig_name: None,
                remote: false,
                fields: vec![
                    field("max_query_chars", Type::Int32, Some(DefaultValueMetadata::Literal(LiteralMetadata::Int(8000, Radix::Decimal, Type::Int32))), Some("Longest | query.")),
                    field("offload", Type::Optional { inner_type: Box::new(offload.clone()) }, Some(DefaultValueMetadata::Literal(LiteralMetadata::None)), None),
                    field("deny", Type::Sequence { inner_type: Box::new(Type::String) }, None, None),
                ],
                docstring: Some("What the app allows.".into()),
            }),
            Metadata::Enum(EnumMetadata {
                module_path: module_path.clone(),
                name: "Offload".into(),
                orig_name: None,
                shape: EnumShape::Enum,
                remote: false,
                variants: vec![variant("WifiOnly", vec![])],
                discr_type: None,
                non_exhaustive: false,
                docstring: None,
            }),
            Metadata::Enum(EnumMetadata {
                module_path: "hybridflow_ffi::error".into(),
                name: "HybridFlowError".into(),
                orig_name: None,
                shape: EnumShape::Error { flat: true },
                remote: false,
                variants: vec![variant("InvalidConfig", vec![field("reason", Type::String, None, None)])],
                discr_type: None,
                non_exhaustive: false,
                docstring: None,
            }),
        ];
        let page = render(&items);
        let config = page.find("## Configuration").unwrap();
        let errors = page.find("## Errors").unwrap();
        assert!(config < page.find("### `AppPolicy` (record)").unwrap() && page.find("### `AppPolicy`").unwrap() < errors, "{page}");
        assert!(page.contains("| `maxQueryChars` | `Int` / `Int32` | `8000` | Longest \\| query. |"), "{page}");
        assert!(page.contains("| `offload` | `Offload?` | `null` / `nil` |"), "{page}");
        assert!(page.contains("| `deny` | `List<String>` / `[String]` | required |"), "{page}");
        assert!(page.contains("| `WIFI_ONLY` | `.wifiOnly` |"), "{page}");
        // Flat errors carry only their message; Kotlin names them exceptions.
        assert!(page.contains("### `HybridFlowException` / `HybridFlowError` (error)"), "{page}");
        assert!(page.contains("| `HybridFlowException.InvalidConfig` | `.invalidConfig` |"), "{page}");
    }
}
