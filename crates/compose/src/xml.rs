//! A thin layer over quick-xml's writer for the CDA: open, close, empty and leaf elements with
//! attributes, escaped by quick-xml, indented by two spaces.
//!
//! Writing into a `Vec<u8>` cannot fail, but quick-xml's API returns `io::Result` at every
//! step; the first error is kept and returned by [`XmlOut::finish`] so that the builders read as
//! the document they write.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use std::io;

pub(crate) struct XmlOut {
    w: Writer<Vec<u8>>,
    err: Option<io::Error>,
}

impl XmlOut {
    pub(crate) fn new() -> XmlOut {
        XmlOut {
            w: Writer::new_with_indent(Vec::with_capacity(16 * 1024), b' ', 2),
            err: None,
        }
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let (Err(e), None) = (r, &self.err) {
            self.err = Some(e);
        }
    }

    /// `<?xml version="1.0" encoding="UTF-8"?>`
    pub(crate) fn declaration(&mut self) {
        let r = self
            .w
            .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        self.keep(r);
    }

    fn start_tag<'a>(name: &'a str, attrs: &[(&str, &str)]) -> BytesStart<'a> {
        let mut tag = BytesStart::new(name);
        for (k, v) in attrs {
            tag.push_attribute((*k, *v));
        }
        tag
    }

    /// `<name attrs>`
    pub(crate) fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let r = self
            .w
            .write_event(Event::Start(Self::start_tag(name, attrs)));
        self.keep(r);
    }

    /// `</name>`
    pub(crate) fn close(&mut self, name: &str) {
        let r = self.w.write_event(Event::End(BytesEnd::new(name)));
        self.keep(r);
    }

    /// `<name attrs/>`
    pub(crate) fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let r = self
            .w
            .write_event(Event::Empty(Self::start_tag(name, attrs)));
        self.keep(r);
    }

    /// Text inside the current element, escaped.
    pub(crate) fn text(&mut self, text: &str) {
        let r = self.w.write_event(Event::Text(BytesText::new(text)));
        self.keep(r);
    }

    /// `<name attrs>text</name>`
    pub(crate) fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        self.text(text);
        self.close(name);
    }

    /// The document, or the first write error.
    pub(crate) fn finish(self) -> io::Result<Vec<u8>> {
        match self.err {
            Some(e) => Err(e),
            None => {
                let mut out = self.w.into_inner();
                out.push(b'\n');
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nests() {
        let mut x = XmlOut::new();
        x.declaration();
        x.open("a", &[("k", "1 & \"2\"")]);
        x.leaf("b", &[], "<x> & y");
        x.empty("c", &[("v", "é")]);
        x.close("a");
        let s = String::from_utf8(x.finish().unwrap()).unwrap();
        assert_eq!(
            s,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a k=\"1 &amp; &quot;2&quot;\">\n  \
             <b>&lt;x&gt; &amp; y</b>\n  <c v=\"é\"/>\n</a>\n"
        );
    }
}
