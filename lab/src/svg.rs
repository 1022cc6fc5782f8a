//! The small SVG charts the lab and the benchmark write for a projector or a README: a white
//! canvas with a bold title, text and bars, with every piece of text escaped.

use std::fmt::Write;

/// A chart being drawn; `finish` gives the SVG document.
pub struct Chart {
    out: String,
}

impl Chart {
    /// A `width` × `height` canvas in `font_size` sans-serif, with `title` at the top left.
    pub fn new(width: f64, height: f64, font_size: u32, title: &str) -> Self {
        let mut out = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="{font_size}">
<rect width="{width}" height="{height}" fill="#fff"/>
"##
        );
        let _ = writeln!(
            out,
            r#"<text x="20" y="28" font-size="{}" font-weight="bold">{}</text>"#,
            font_size + 3,
            escape(title)
        );
        Self { out }
    }

    /// Text at (`x`, `y`), with extra attributes such as `font-size="13"` (may be empty).
    pub fn text(&mut self, x: f64, y: f64, attributes: &str, text: &str) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" {attributes}>{}</text>"#,
            escape(text)
        );
    }

    /// A filled rectangle.
    pub fn bar(&mut self, x: f64, y: f64, width: f64, height: f64, color: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}" fill="{color}"/>"#
        );
    }

    /// A line through `points`, with a dot at each.
    pub fn line(&mut self, points: &[(f64, f64)], color: &str) {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in points {
            let _ = writeln!(
                self.out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
            );
        }
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_document_is_closed() {
        let mut chart = Chart::new(100.0, 50.0, 12, "a < b & c");
        chart.text(1.0, 2.0, "", "<script>");
        chart.bar(0.0, 0.0, 10.0, 5.0, "#000");
        chart.line(&[(1.0, 2.0), (3.0, 4.0)], "#123");
        let svg = chart.finish();
        assert!(svg.contains(r#"<polyline points="1.0,2.0 3.0,4.0""#));
        assert!(svg.contains("a &lt; b &amp; c") && svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    }
}
