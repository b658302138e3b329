//! Answer normalisation, the VQA accuracy metric, soft scores, the answer vocabulary and
//! the bias prior, on tricky answers whose expected values were worked out by hand.

use std::path::PathBuf;

use sparsevlp::data::{
    normalize_answer, soft_score, vqa_accuracy, AnswerType, AnswerVocab, BiasPrior, Example, Split,
    VqaScorer,
};

fn answers(list: &[(&str, usize)]) -> Vec<String> {
    list.iter()
        .flat_map(|(a, n)| std::iter::repeat_n(a.to_string(), *n))
        .collect()
}

#[test]
fn normalisation_follows_the_official_rules() {
    let cases = [
        // number words become digits; articles go; case folds
        ("Two", "2"),
        ("the two", "2"),
        ("none", "0"),
        ("one hundred", "1 hundred"),
        ("A Dog", "dog"),
        ("an apple", "apple"),
        // periods: removed unless a digit follows
        ("two.", "2"),
        ("yes.", "yes"),
        ("3.5", "3.5"),
        (".5", ".5"),
        ("5 ft.", "5 ft"),
        // a digit-comma-digit group: all punctuation is removed
        ("1,000", "1000"),
        // punctuation touching a space is removed, otherwise it becomes a space
        ("1, 2", "1 2"),
        ("black-and-white", "black and white"),
        ("black - white", "black white"),
        ("t-shirt", "t shirt"),
        ("Yes!", "yes"),
        ("(left)", "left"),
        ("left (side)", "left side"),
        // characters outside the official list stay
        ("10:30", "10:30"),
        ("black & white", "black & white"),
        ("it's", "it's"),
        // contractions regain their apostrophe
        ("dont", "don't"),
        ("Dont know", "don't know"),
        ("isnt", "isn't"),
        // white space
        ("  red\n", "red"),
        ("red\tcar", "red car"),
        ("", ""),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_answer(raw), want, "normalising {raw:?}");
    }
}

#[test]
fn accuracy_matches_hand_computed_values() {
    // (prediction, annotator answers, expected accuracy)
    let cases: Vec<(&str, Vec<String>, f64)> = vec![
        // 6 matches after normalisation ("two" = "2") → 1
        ("2", answers(&[("two", 4), ("2", 2), ("3", 4)]), 1.0),
        // 1 match: the matching annotator leaves 0, the 9 others leave 1/3 → 0.3
        ("Two", answers(&[("2", 1), ("3", 9)]), 0.3),
        // 2 matches with articles: 2·(1/3) + 8·(2/3) over 10 → 0.6
        (
            "dog",
            answers(&[("a dog", 1), ("the dog", 1), ("cat", 8)]),
            0.6,
        ),
        // 3 matches with punctuation: 3·(2/3) + 7·1 over 10 → 0.9
        (
            "black and white",
            answers(&[("black-and-white", 3), ("black & white", 7)]),
            0.9,
        ),
        ("yes", answers(&[("Yes.", 1), ("no", 9)]), 0.3),
        (
            "1000",
            answers(&[("1,000", 2), ("1000", 1), ("one thousand", 7)]),
            0.9,
        ),
        ("red", answers(&[("red", 10)]), 1.0),
        ("blue", answers(&[("red", 5), ("green", 5)]), 0.0),
        // 3 annotators: the 2 matching ones leave 1 (1/3), the other leaves 2 (2/3) → 4/9
        ("b", answers(&[("a", 1), ("b", 2)]), 4.0 / 9.0),
        // unanimous variant spelling: normalised here too (see the metric's doc)
        ("2", answers(&[("two", 10)]), 1.0),
        ("anything", vec![], 0.0),
    ];
    for (pred, gts, want) in cases {
        let got = vqa_accuracy(pred, &gts);
        assert!(
            (got - want).abs() < 1e-12,
            "{pred:?} against {gts:?}: {got}, expected {want}"
        );
    }
}

fn example(id: u64, qtype: &str, atype: AnswerType, mc: &str, gts: &[(&str, usize)]) -> Example {
    Example {
        question_id: id,
        image_id: id,
        question: format!("question {id}?"),
        question_type: qtype.into(),
        answer_type: atype,
        multiple_choice_answer: mc.into(),
        answers: answers(gts),
    }
}

fn split(examples: Vec<Example>) -> Split {
    Split {
        name: "train".into(),
        questions_file: PathBuf::from("q.json"),
        annotations_file: PathBuf::from("a.json"),
        examples,
    }
}

#[test]
fn scorer_reports_per_answer_and_question_type() {
    let exs = [
        example(1, "is the", AnswerType::YesNo, "yes", &[("yes", 10)]),
        example(
            2,
            "is the",
            AnswerType::YesNo,
            "no",
            &[("no", 9), ("yes", 1)],
        ),
        example(
            3,
            "how many",
            AnswerType::Number,
            "2",
            &[("2", 2), ("3", 8)],
        ),
        example(
            4,
            "what color is the",
            AnswerType::Other,
            "red",
            &[("red", 10)],
        ),
    ];
    let preds = ["yes", "yes", "two", "blue"];
    let mut scorer = VqaScorer::new();
    let accs: Vec<f64> = exs
        .iter()
        .zip(preds)
        .map(|(e, p)| scorer.add(e, p))
        .collect();
    assert_eq!(accs, vec![1.0, 0.3, 0.6, 0.0]);
    let report = scorer.report();
    assert_eq!(report.count, 4);
    assert!((report.overall - 100.0 * 1.9 / 4.0).abs() < 1e-9);
    assert!((report.answer_type(AnswerType::YesNo) - 65.0).abs() < 1e-9);
    assert!((report.answer_type(AnswerType::Number) - 60.0).abs() < 1e-9);
    assert_eq!(report.answer_type(AnswerType::Other), 0.0);
    assert_eq!(report.per_question_type["is the"].count, 2);
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["per_answer_type"]["yes/no"]["count"], 2);
    assert!((json["overall"].as_f64().unwrap() - 47.5).abs() < 1e-9);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accuracy.json");
    report.write_json(&path).unwrap();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, json);
}

#[test]
fn soft_scores_follow_the_staircase() {
    let got: Vec<f32> = (0..6).map(soft_score).collect();
    let want = [0.0, 0.3, 0.6, 0.9, 1.0, 1.0];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn vocabulary_counts_normalised_top_answers() {
    let s = split(vec![
        example(1, "how many", AnswerType::Number, "Two", &[("2", 10)]),
        example(2, "how many", AnswerType::Number, "2", &[("2", 10)]),
        example(3, "how many", AnswerType::Number, "3", &[("3", 10)]),
        example(
            4,
            "what color is the",
            AnswerType::Other,
            "red",
            &[("red", 10)],
        ),
        example(
            5,
            "what color is the",
            AnswerType::Other,
            "the red",
            &[("red", 10)],
        ),
    ]);
    let all = AnswerVocab::build(&s, 1).unwrap();
    assert_eq!(all.answers(), ["2", "red", "3"]);
    assert_eq!(all.index_of("two"), Some(0));
    assert_eq!(all.index_of("Red."), Some(1));
    assert_eq!(all.index_of("blue"), None);
    let frequent = AnswerVocab::build(&s, 2).unwrap();
    assert_eq!(frequent.answers(), ["2", "red"]);
    let err = AnswerVocab::build(&s, 3).unwrap_err().to_string();
    assert!(
        err.contains("a.json") && err.contains("at least 3"),
        "{err}"
    );
    let given = AnswerVocab::from_answers(&["Two".into(), "red".into()]).unwrap();
    assert_eq!(given.answers(), ["2", "red"]);
    assert!(AnswerVocab::from_answers(&["2".into(), "two".into()]).is_err());
}

#[test]
fn bias_prior_is_the_mean_soft_score_per_question_type() {
    let s = split(vec![
        example(1, "how many", AnswerType::Number, "2", &[("2", 10)]),
        example(
            2,
            "how many",
            AnswerType::Number,
            "3",
            &[("3", 3), ("two", 7)],
        ),
        example(
            3,
            "is the",
            AnswerType::YesNo,
            "yes",
            &[("yes", 2), ("no", 8)],
        ),
    ]);
    let vocab = AnswerVocab::build(&s, 1).unwrap(); // 2, 3, yes (count 1 each, by name)
    assert_eq!(vocab.answers(), ["2", "3", "yes"]);
    let prior = BiasPrior::build(&s, &vocab);
    assert_eq!(prior.question_types(), ["how many", "is the"]);
    assert_eq!(prior.num_rows(), 3);
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    // how many: "2" scores 1 and 1, "3" scores 0.9 and 0 → means 1 and 0.45
    let hm = prior.row(prior.type_index("how many"));
    assert!(close(hm, &[1.0, 0.45, 0.0]), "{hm:?}");
    // is the: "yes" given by 2 → 0.6 ("no" is not in the vocabulary)
    assert!(close(
        prior.row(prior.type_index("is the")),
        &[0.0, 0.0, 0.6]
    ));
    // unseen types fall back to the mean over all questions
    let fb = prior.row(prior.type_index("what sport is"));
    assert!(close(fb, &[2.0 / 3.0, 0.3, 0.2]), "{fb:?}");
    assert_eq!(prior.top_answer(prior.type_index("how many")), Some(0));
    let g = prior.gather(&[1, 0]).unwrap();
    assert_eq!(g.dims(), &[2, 3]);
    assert!(close(&g.to_vec_f32(), &[0.0, 0.0, 0.6, 1.0, 0.45, 0.0]));
}
