//! A small element tree for CoT events: built and written with `quick-xml`'s writer (which
//! escapes every attribute value and text), parsed with its reader (which resolves the
//! predefined and numeric entities). CoT events are small and flat, so a tree is the simplest
//! correct reading; depth and size are bounded so hostile input cannot exhaust memory.

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer, XmlVersion};
use thiserror::Error;

/// Deepest element nesting accepted (CoT events are 3–4 levels deep).
pub const MAX_DEPTH: usize = 16;
/// Most elements accepted in one event.
pub const MAX_ELEMENTS: usize = 512;

/// Why a document is not a usable XML element.
#[derive(Debug, Error, PartialEq)]
pub enum XmlError {
    #[error("not well-formed XML: {0}")]
    Syntax(String),
    #[error("no root element")]
    Empty,
    #[error("nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("more than {MAX_ELEMENTS} elements")]
    TooMany,
}

/// One XML element: name, attributes in order, text content and children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// An element named `name` with nothing in it.
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Adds attribute `k` = `v` (builder style).
    pub fn attr(mut self, k: &str, v: impl Into<String>) -> Element {
        self.attrs.push((k.to_string(), v.into()));
        self
    }

    /// Adds a child element (builder style).
    pub fn child(mut self, c: Element) -> Element {
        self.children.push(c);
        self
    }

    /// Sets the text content (builder style).
    pub fn with_text(mut self, t: impl Into<String>) -> Element {
        self.text = t.into();
        self
    }

    /// The value of attribute `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Serialises the element (no XML declaration: TAK servers accept both).
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new(Vec::new());
        write(&mut w, self);
        // The writer only ever receives `&str`s, so the output is UTF-8.
        String::from_utf8(w.into_inner()).unwrap_or_default()
    }

    /// Parses the first root element of `src` (a leading XML declaration is skipped).
    pub fn parse(src: &str) -> Result<Element, XmlError> {
        let mut r = Reader::from_str(src);
        r.config_mut().check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut count = 0usize;
        loop {
            let ev = r
                .read_event()
                .map_err(|e| XmlError::Syntax(e.to_string()))?;
            match ev {
                Event::Start(s) => {
                    count += 1;
                    if count > MAX_ELEMENTS {
                        return Err(XmlError::TooMany);
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(XmlError::TooDeep);
                    }
                    stack.push(start(&s)?);
                }
                Event::Empty(s) => {
                    count += 1;
                    if count > MAX_ELEMENTS {
                        return Err(XmlError::TooMany);
                    }
                    let e = start(&s)?;
                    match stack.last_mut() {
                        Some(p) => p.children.push(e),
                        None => return Ok(e),
                    }
                }
                Event::End(_) => {
                    let done = stack.pop().ok_or(XmlError::Empty)?;
                    match stack.last_mut() {
                        Some(p) => p.children.push(done),
                        None => return Ok(done),
                    }
                }
                Event::Text(t) => {
                    if let Some(cur) = stack.last_mut() {
                        let s = t
                            .xml_content(XmlVersion::Implicit1_0)
                            .map_err(|e| XmlError::Syntax(e.to_string()))?;
                        cur.text.push_str(&s);
                    }
                }
                Event::CData(t) => {
                    if let Some(cur) = stack.last_mut() {
                        let s = t.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                        cur.text.push_str(&s);
                    }
                }
                Event::GeneralRef(g) => {
                    let Some(cur) = stack.last_mut() else {
                        continue;
                    };
                    let name = g.decode().map_err(|e| XmlError::Syntax(e.to_string()))?;
                    if let Some(ch) = g
                        .resolve_char_ref()
                        .map_err(|e| XmlError::Syntax(e.to_string()))?
                    {
                        cur.text.push(ch);
                    } else if let Some(v) = quick_xml::escape::resolve_predefined_entity(&name) {
                        cur.text.push_str(v);
                    } else {
                        return Err(XmlError::Syntax(format!("unknown entity &{name};")));
                    }
                }
                Event::Eof => {
                    return Err(if stack.is_empty() {
                        XmlError::Empty
                    } else {
                        XmlError::Syntax("unexpected end of document".into())
                    })
                }
                // Declarations, comments, processing instructions, DOCTYPE: not content.
                _ => {}
            }
        }
    }
}

/// Attribute `k` of the root element of `src`, reading only its start tag (cheap enough for
/// every event a link sends).
pub fn root_attr(src: &str, k: &str) -> Option<String> {
    let mut r = Reader::from_str(src);
    loop {
        match r.read_event().ok()? {
            Event::Start(s) | Event::Empty(s) => {
                return start(&s).ok()?.get(k).map(str::to_string);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

fn start(s: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(s.name().as_ref())
        .map_err(|e| XmlError::Syntax(e.to_string()))?
        .to_string();
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| XmlError::Syntax(e.to_string()))?;
        let k = std::str::from_utf8(a.key.as_ref())
            .map_err(|e| XmlError::Syntax(e.to_string()))?
            .to_string();
        let v = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| XmlError::Syntax(e.to_string()))?
            .into_owned();
        attrs.push((k, v));
    }
    Ok(Element {
        name,
        attrs,
        ..Default::default()
    })
}

fn write(w: &mut Writer<Vec<u8>>, e: &Element) {
    let mut s = BytesStart::new(e.name.as_str());
    for (k, v) in &e.attrs {
        // `push_attribute` escapes `<`, `>`, `&`, `'` and `"`.
        s.push_attribute((k.as_str(), v.as_str()));
    }
    // Writing to a Vec cannot fail.
    if e.children.is_empty() && e.text.is_empty() {
        let _ = w.write_event(Event::Empty(s));
        return;
    }
    let _ = w.write_event(Event::Start(s));
    if !e.text.is_empty() {
        let _ = w.write_event(Event::Text(BytesText::new(&e.text)));
    }
    for c in &e.children {
        write(w, c);
    }
    let _ = w.write_event(Event::End(BytesEnd::new(e.name.as_str())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_round_trips() {
        let nasty = r#"<b>&amp; "quoted" 'single' </event> ünïcødé 🚒"#;
        let e = Element::new("remarks")
            .attr("callsign", nasty)
            .with_text(nasty);
        let xml = e.to_xml();
        assert!(!xml.contains("</event>"), "{xml}");
        let back = Element::parse(&xml).unwrap();
        assert_eq!(back.get("callsign"), Some(nasty));
        assert_eq!(back.text, nasty);
    }

    #[test]
    fn declaration_and_numeric_references_are_read() {
        let e = Element::parse("<?xml version=\"1.0\"?><a x=\"&#x41;\">&#66;&lt;</a>").unwrap();
        assert_eq!(e.get("x"), Some("A"));
        assert_eq!(e.text, "B<");
    }

    #[test]
    fn mismatched_and_deep_documents_are_errors() {
        assert!(matches!(
            Element::parse("<a><b></a>"),
            Err(XmlError::Syntax(_))
        ));
        assert_eq!(Element::parse(""), Err(XmlError::Empty));
        let deep = "<a>".repeat(40);
        assert_eq!(Element::parse(&deep), Err(XmlError::TooDeep));
    }
}
