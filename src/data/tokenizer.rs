//! Question tokenizers: BERT WordPiece from a `vocab.txt` (the bert-base-uncased
//! algorithm), and a word-level vocabulary built from training questions.
//!
//! Both share BERT's uncased basic tokenisation: control characters dropped, white space
//! normalised, spaces put around CJK ideographs, lower-casing, accents stripped (NFD, then
//! combining marks removed), and every punctuation character split off as its own token
//! (ASCII symbols count as punctuation, as in BERT). WordPiece then splits each word
//! greedily, longest match first, with `##` marking continuation pieces; a word longer than
//! 100 characters, or one with no full split, becomes `[UNK]`. The word-level vocabulary
//! maps whole words and sends unknown words to `[UNK]`.
//!
//! Known approximation: for non-ASCII characters the punctuation and format-character
//! tests use fixed tables of the common Unicode blocks, not the full Unicode database.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

use super::files::{file_error, io_error, write_atomically};
use super::vqa::Split;

/// The special tokens every vocabulary must hold.
const SPECIALS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];

/// Words longer than this many characters become `[UNK]` (BERT's default).
const MAX_WORD_CHARS: usize = 100;

/// A token list with its lookup table and the special-token ids.
#[derive(Debug, Clone, PartialEq)]
struct Vocab {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
    pad: u32,
    unk: u32,
    cls: u32,
    sep: u32,
}

impl Vocab {
    /// A vocabulary where token i has id i; a repeated token keeps its last id (as
    /// BERT's loader does). `source` names the origin in errors.
    fn new(tokens: Vec<String>, source: &Path) -> Result<Vocab> {
        if tokens.len() > u32::MAX as usize {
            return Err(file_error(source, "too many tokens"));
        }
        let index: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let id = |name: &str| {
            index
                .get(name)
                .copied()
                .ok_or_else(|| file_error(source, format!("the vocabulary has no {name} token")))
        };
        Ok(Vocab {
            pad: id(SPECIALS[0])?,
            unk: id(SPECIALS[1])?,
            cls: id(SPECIALS[2])?,
            sep: id(SPECIALS[3])?,
            index,
            tokens,
        })
    }

    /// Reads a `vocab.txt`: one token per line, the line number is the id.
    fn from_file(path: &Path) -> Result<Vocab> {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        let tokens: Vec<String> = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .collect();
        Vocab::new(tokens, path)
    }

    /// Writes one token per line.
    fn save(&self, path: &Path) -> Result<()> {
        let mut text = self.tokens.join("\n");
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }
}

/// BERT's WordPiece tokenizer (uncased), read from a `vocab.txt`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordPiece {
    vocab: Vocab,
}

impl WordPiece {
    /// Reads `vocab.txt` (one token per line; must hold `[PAD] [UNK] [CLS] [SEP]`).
    pub fn from_file(path: &Path) -> Result<WordPiece> {
        Ok(WordPiece {
            vocab: Vocab::from_file(path)?,
        })
    }

    /// The WordPiece tokens of `text` (without `[CLS]`/`[SEP]`).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.pieces(text)
            .into_iter()
            .map(|id| self.vocab.tokens[id as usize].clone())
            .collect()
    }

    /// The token ids of `text` (without `[CLS]`/`[SEP]`).
    fn pieces(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for word in basic_tokenize(text) {
            self.split_word(&word, &mut out);
        }
        out
    }

    /// Greedy longest-match-first split of one word; the whole word is `[UNK]` when some
    /// remainder matches no piece or the word is longer than 100 characters.
    fn split_word(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        if chars.len() > MAX_WORD_CHARS {
            out.push(self.vocab.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + 2);
        while start < chars.len() {
            let mut found = None;
            for end in (start + 1..=chars.len()).rev() {
                let from = chars[start].0;
                let to = chars.get(end).map_or(word.len(), |c| c.0);
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[from..to]);
                if let Some(&id) = self.vocab.index.get(&candidate) {
                    found = Some((id, end));
                    break;
                }
            }
            match found {
                Some((id, end)) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.vocab.unk);
                    return;
                }
            }
        }
    }
}

/// A word-level vocabulary for models trained from scratch: `[PAD] [UNK] [CLS] [SEP]`,
/// then the training-question words, most frequent first.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVocab {
    vocab: Vocab,
}

impl WordVocab {
    /// The words (after basic tokenisation) of the questions of `split` that occur at
    /// least `min_count` times, ordered by count, then alphabetically.
    pub fn build(split: &Split, min_count: usize) -> Result<WordVocab> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for ex in &split.examples {
            for w in basic_tokenize(&ex.question) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut words: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(w, c)| *c >= min_count.max(1) && !SPECIALS.contains(&w.as_str()))
            .collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let tokens = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(words.into_iter().map(|(w, _)| w))
            .collect();
        Ok(WordVocab {
            vocab: Vocab::new(tokens, &split.questions_file)?,
        })
    }

    /// Reads a word list written by [`WordVocab::save`].
    pub fn from_file(path: &Path) -> Result<WordVocab> {
        Ok(WordVocab {
            vocab: Vocab::from_file(path)?,
        })
    }

    /// Writes the word list, one word per line (the line number is the id).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.vocab.save(path)
    }

    /// The words (after basic tokenisation) of `text`, `[UNK]` for unknown ones.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.ids(text)
            .into_iter()
            .map(|id| self.vocab.tokens[id as usize].clone())
            .collect()
    }

    fn ids(&self, text: &str) -> Vec<u32> {
        basic_tokenize(text)
            .into_iter()
            .map(|w| self.vocab.index.get(&w).copied().unwrap_or(self.vocab.unk))
            .collect()
    }
}

/// A question encoded for a model: `[CLS] tokens [SEP]`, padded with `[PAD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, padded to the requested length.
    pub ids: Vec<u32>,
    /// Number of real tokens (including `[CLS]` and `[SEP]`); the rest is padding.
    pub len: usize,
}

/// Either tokenizer, behind one interface.
#[derive(Debug, Clone, PartialEq)]
pub enum Tokenizer {
    /// BERT WordPiece.
    WordPiece(WordPiece),
    /// Whole words.
    Words(WordVocab),
}

impl Tokenizer {
    fn vocab(&self) -> &Vocab {
        match self {
            Tokenizer::WordPiece(w) => &w.vocab,
            Tokenizer::Words(w) => &w.vocab,
        }
    }

    /// Number of token ids (the embedding table's rows).
    pub fn vocab_size(&self) -> usize {
        self.vocab().tokens.len()
    }

    /// The `[PAD]` id.
    pub fn pad_id(&self) -> u32 {
        self.vocab().pad
    }

    /// The tokens of `text`, without special tokens.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        match self {
            Tokenizer::WordPiece(w) => w.tokenize(text),
            Tokenizer::Words(w) => w.tokenize(text),
        }
    }

    /// `[CLS] tokens [SEP]` padded with `[PAD]` to `max_len` (≥ 2); tokens past
    /// `max_len − 2` are cut, `[SEP]` is always kept.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Encoding> {
        if max_len < 2 {
            return Err(Error::invalid(format!(
                "max text length {max_len}: must hold at least [CLS] and [SEP]"
            )));
        }
        let v = self.vocab();
        let mut body = match self {
            Tokenizer::WordPiece(w) => w.pieces(text),
            Tokenizer::Words(w) => w.ids(text),
        };
        body.truncate(max_len - 2);
        let mut ids = Vec::with_capacity(max_len);
        ids.push(v.cls);
        ids.extend_from_slice(&body);
        ids.push(v.sep);
        let len = ids.len();
        ids.resize(max_len, v.pad);
        Ok(Encoding { ids, len })
    }
}

/// BERT's uncased basic tokenisation (see the module doc).
pub(crate) fn basic_tokenize(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        if c.is_whitespace() {
            cleaned.push(' ');
        } else if is_cjk(c) {
            cleaned.push(' ');
            cleaned.push(c);
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    let mut out = Vec::new();
    for word in cleaned.split_whitespace() {
        let lowered: String = word
            .to_lowercase()
            .nfd()
            .filter(|&c| !is_combining_mark(c))
            .collect();
        let mut current = String::new();
        for c in lowered.chars() {
            if is_punctuation(c) {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                out.push(c.to_string());
            } else {
                current.push(c);
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// A control or format character other than tab, newline and carriage return.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c.is_control()
        || matches!(c as u32,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
            | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF)
}

/// A CJK ideograph (the blocks BERT puts spaces around).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Punctuation as BERT sees it: every non-alphanumeric printable ASCII character, and the
/// Unicode punctuation (P*) of the common blocks.
fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    matches!(c as u32,
        0xA1 | 0xA7 | 0xAB | 0xB6 | 0xB7 | 0xBB | 0xBF | 0x37E | 0x387 | 0x55A..=0x55F
        | 0x589..=0x58A | 0x5BE | 0x5C0 | 0x5C3 | 0x5C6 | 0x5F3..=0x5F4 | 0x609..=0x60A
        | 0x60C..=0x60D | 0x61B | 0x61E..=0x61F | 0x66A..=0x66D | 0x6D4 | 0x964..=0x965
        | 0x970 | 0xE4F | 0xE5A..=0xE5B | 0x2010..=0x2027 | 0x2030..=0x2043
        | 0x2045..=0x2051 | 0x2053..=0x205E | 0x207D..=0x207E | 0x208D..=0x208E
        | 0x2308..=0x230B | 0x2329..=0x232A | 0x2768..=0x2775 | 0x27C5..=0x27C6
        | 0x27E6..=0x27EF | 0x2983..=0x2998 | 0x29D8..=0x29DB | 0x29FC..=0x29FD
        | 0x2CF9..=0x2CFC | 0x2CFE..=0x2CFF | 0x2E00..=0x2E2E | 0x2E30..=0x2E4F
        | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F | 0x3030 | 0x303D | 0x30A0
        | 0x30FB | 0xFE10..=0xFE19 | 0xFE30..=0xFE52 | 0xFE54..=0xFE61 | 0xFE63 | 0xFE68
        | 0xFE6A..=0xFE6B | 0xFF01..=0xFF03 | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F
        | 0xFF1A..=0xFF1B | 0xFF1F..=0xFF20 | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D
        | 0xFF5F..=0xFF65)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_tokenisation_splits_punctuation_and_strips_accents() {
        assert_eq!(
            basic_tokenize("  Is the CAFÉ's sign red?\u{200b}\t"),
            ["is", "the", "cafe", "'", "s", "sign", "red", "?"]
        );
        assert_eq!(basic_tokenize("你好x"), ["你", "好", "x"]);
    }
}
