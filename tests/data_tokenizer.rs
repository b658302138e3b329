//! Tokenizers: BERT WordPiece on a small handmade vocab.txt, with the expected tokens
//! worked out by hand from the bert-base-uncased algorithm (uncased basic tokenisation,
//! punctuation split, greedy longest-match-first with `##` continuations, words over 100
//! characters → [UNK]); and the word-level vocabulary built from training questions.
//!
//! The expected WordPiece tokens were also checked against the reference implementation
//! (Hugging Face `tokenizers` 0.23.3, `BertWordPieceTokenizer` with lowercase=True on the
//! same vocab.txt), which produced exactly these lists.

use std::path::{Path, PathBuf};

use sparsevlp::data::{AnswerType, Example, Split, Tokenizer, WordPiece, WordVocab};

const VOCAB: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", "'", "-", ".", "what", "color", "is", "the",
    "man", "s", "shirt", "how", "many", "people", "are", "play", "##ing", "this", "a", "ca",
    "##fe", "dog", "##s", "sleep", "2", "story", "house", "x", "##y", "un", "##aff", "##able",
    "it", "##a", "cat",
];

fn wordpiece(dir: &Path) -> WordPiece {
    let path = dir.join("vocab.txt");
    std::fs::write(&path, VOCAB.join("\n") + "\n").unwrap();
    WordPiece::from_file(&path).unwrap()
}

#[test]
fn wordpiece_matches_hand_derived_bert_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let wp = wordpiece(dir.path());
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "What color is the man's shirt?".into(),
            vec!["what", "color", "is", "the", "man", "'", "s", "shirt", "?"],
        ),
        (
            "How many people are playing?".into(),
            vec!["how", "many", "people", "are", "play", "##ing", "?"],
        ),
        // accents are stripped after lower-casing: café → cafe → ca ##fe
        (
            "Is this a CAFÉ?".into(),
            vec!["is", "this", "a", "ca", "##fe", "?"],
        ),
        (
            "Are the dogs sleeping?".into(),
            vec!["are", "the", "dog", "##s", "sleep", "##ing", "?"],
        ),
        // x ##y matches, but "zzy" has no piece: the whole word is [UNK]
        (
            "What is the xyzzy?".into(),
            vec!["what", "is", "the", "[UNK]", "?"],
        ),
        (
            "How many 2-story houses?".into(),
            vec!["how", "many", "2", "-", "story", "house", "##s", "?"],
        ),
        ("unaffable".into(), vec!["un", "##aff", "##able"]),
        // tabs, no-break spaces and doubled spaces are white space
        (
            "WHAT\tcolor\u{a0}is  it".into(),
            vec!["what", "color", "is", "it"],
        ),
        // CJK ideographs become words of their own
        ("what is 猫?".into(), vec!["what", "is", "[UNK]", "?"]),
        // control characters vanish
        ("ca\u{0}t\u{7}".into(), vec!["cat"]),
        // 101 characters is over BERT's limit of 100
        ("a".repeat(101), vec!["[UNK]"]),
        // non-ASCII punctuation splits; a lone "y" is not a word of this vocabulary
        (
            "what's «this» — x…y?".into(),
            vec![
                "what", "'", "s", "[UNK]", "this", "[UNK]", "[UNK]", "x", "[UNK]", "[UNK]", "?",
            ],
        ),
        // a combining accent is stripped, a soft hyphen (a format character) removed
        ("x\u{301}y".into(), vec!["x", "##y"]),
        ("\u{ad} soft\u{ad}hyphen".into(), vec!["[UNK]"]),
        (
            "$5 & #3".into(),
            vec!["[UNK]", "[UNK]", "[UNK]", "[UNK]", "[UNK]"],
        ),
    ];
    for (text, want) in &cases {
        assert_eq!(wp.tokenize(text), *want, "tokenizing {text:?}");
    }
    let mut hundred = vec!["a"];
    hundred.extend(std::iter::repeat_n("##a", 99));
    assert_eq!(wp.tokenize(&"a".repeat(100)), hundred);
}

#[test]
fn encoding_adds_cls_sep_and_padding_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let tok = Tokenizer::WordPiece(wordpiece(dir.path()));
    assert_eq!(tok.vocab_size(), VOCAB.len());
    assert_eq!(tok.pad_id(), 0);
    let enc = tok.encode("How many dogs?", 8).unwrap();
    // [CLS] how many dog ##s ? [SEP] [PAD]
    assert_eq!(enc.ids, vec![2, 16, 17, 26, 27, 5, 3, 0]);
    assert_eq!(enc.len, 7);
    let cut = tok.encode("How many dogs?", 4).unwrap();
    assert_eq!(cut.ids, vec![2, 16, 17, 3]);
    assert_eq!(cut.len, 4);
    assert!(tok.encode("x", 1).is_err());
}

#[test]
fn vocab_without_special_tokens_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.txt");
    std::fs::write(&path, "[PAD]\n[UNK]\nhello\n").unwrap();
    let err = WordPiece::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("vocab.txt") && err.contains("[CLS]"), "{err}");
    let missing = WordPiece::from_file(&dir.path().join("nope.txt")).unwrap_err();
    assert!(missing.to_string().contains("nope.txt"));
}

fn split(questions: &[&str]) -> Split {
    Split {
        name: "train".into(),
        questions_file: PathBuf::from("train_questions.json"),
        annotations_file: PathBuf::from("train_annotations.json"),
        examples: questions
            .iter()
            .enumerate()
            .map(|(i, q)| Example {
                question_id: i as u64,
                image_id: 0,
                question: q.to_string(),
                question_type: "what".into(),
                answer_type: AnswerType::Other,
                multiple_choice_answer: "x".into(),
                answers: vec!["x".into()],
            })
            .collect(),
    }
}

#[test]
fn word_vocabulary_comes_from_training_questions() {
    let s = split(&[
        "What color is the cat?",
        "what color is the dog?",
        "Is the dog's tail long?",
    ]);
    let words = WordVocab::build(&s, 2).unwrap();
    // specials, then by count (the ×3, is ×3, ? ×3, color/dog/what ×2), ties by name
    assert_eq!(
        words.tokenize("the dog is what color? zebra"),
        ["the", "dog", "is", "what", "color", "?", "[UNK]"]
    );
    let tok = Tokenizer::Words(words.clone());
    assert_eq!(tok.vocab_size(), 4 + 6);
    let enc = tok.encode("is the cat?", 6).unwrap();
    // [CLS]=2, is, the, cat → [UNK]=1, ?, [SEP]=3
    assert_eq!(enc.ids[0], 2);
    assert_eq!(enc.ids[3], 1);
    assert_eq!(enc.ids[5], 3);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("words.txt");
    words.save(&path).unwrap();
    let back = WordVocab::from_file(&path).unwrap();
    assert_eq!(back, words);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("[PAD]\n[UNK]\n[CLS]\n[SEP]\n"), "{text}");
}
