//! A 3x5 pixel font for the plot's labels, so drawing text needs no system
//! fonts (plotters' text support would link font-kit and fontconfig).
//! Upper-case letters, digits and a few signs; anything else draws as a gap.

/// Rows top to bottom; bit 4 is the left pixel, 1 the right.
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        '0' | 'O' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 6, 1, 6],
        'S' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [7, 4, 4, 4, 7],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [7, 4, 5, 5, 7],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 7],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'P' => [7, 5, 7, 4, 4],
        'Q' => [7, 5, 5, 7, 1],
        'R' => [7, 5, 6, 5, 5],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        '/' => [1, 1, 2, 4, 4],
        '%' => [5, 1, 2, 4, 5],
        '-' => [0, 0, 7, 0, 0],
        ':' => [0, 2, 0, 2, 0],
        '>' => [4, 2, 1, 2, 4],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '=' => [0, 7, 0, 7, 0],
        _ => [0; 5],
    }
}

/// The pixels (column, row) of `text` at scale 1, with one blank column
/// between characters; callers scale and offset them.
pub fn pixels(text: &str) -> Vec<(i32, i32)> {
    let mut on = Vec::new();
    for (n, c) in text.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    on.push((n as i32 * 4 + col, row as i32));
                }
            }
        }
    }
    on
}

/// Width in pixels at scale 1.
pub fn width(text: &str) -> i32 {
    (text.chars().count() as i32 * 4 - 1).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_laid_out_left_to_right() {
        assert_eq!(pixels("1").len(), 8);
        let two = pixels("-1");
        assert!(two.contains(&(0, 2)) && two.contains(&(5, 0)));
        assert_eq!(width("ab"), 7);
        assert!(pixels("~").is_empty());
    }
}
