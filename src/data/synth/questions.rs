//! Question families of the synthetic dataset: each has a VQA question type, an answer
//! type, a closed answer space, and enumerates every question it can ask about a scene
//! together with the answer the scene gives (so every question is answerable from the
//! picture).

use crate::data::AnswerType;

use super::scene::{Colour, Scene, Shape, Size};

/// The question families, one per question type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// "is there a red circle?"
    IsThereA,
    /// "is the square blue?" (the shape is unique in the scene)
    IsThe,
    /// "how many triangles are there?" / "how many red objects are there?"
    HowMany,
    /// "what color is the circle?" / "what color is the small square?"
    WhatColor,
    /// "what shape is the green object?"
    WhatShape,
    /// "what shape is left of the red circle?" (exactly one object left of it in its row)
    LeftOf,
}

/// Largest count a "how many" question asks about.
const MAX_COUNT: usize = 3;

impl Family {
    pub(crate) const ALL: [Family; 6] = [
        Family::IsThereA,
        Family::IsThe,
        Family::HowMany,
        Family::WhatColor,
        Family::WhatShape,
        Family::LeftOf,
    ];

    /// The VQA question type.
    pub(crate) fn question_type(self) -> &'static str {
        match self {
            Family::IsThereA => "is there a",
            Family::IsThe => "is the",
            Family::HowMany => "how many",
            Family::WhatColor => "what color is the",
            Family::WhatShape => "what shape is the",
            Family::LeftOf => "what shape is left of the",
        }
    }

    /// The VQA answer type.
    pub(crate) fn answer_type(self) -> AnswerType {
        match self {
            Family::IsThereA | Family::IsThe => AnswerType::YesNo,
            Family::HowMany => AnswerType::Number,
            Family::WhatColor | Family::WhatShape | Family::LeftOf => AnswerType::Other,
        }
    }

    /// Every answer the family can give.
    pub(crate) fn answers(self) -> Vec<&'static str> {
        match self {
            Family::IsThereA | Family::IsThe => vec!["yes", "no"],
            Family::HowMany => vec!["0", "1", "2", "3"],
            Family::WhatColor => Colour::ALL.iter().map(|c| c.name()).collect(),
            Family::WhatShape | Family::LeftOf => Shape::ALL.iter().map(|s| s.name()).collect(),
        }
    }

    /// Every (question, answer) the family can ask about `scene`.
    pub(crate) fn candidates(self, scene: &Scene) -> Vec<(String, &'static str)> {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut out = Vec::new();
        match self {
            Family::IsThereA => {
                for c in Colour::ALL {
                    for s in Shape::ALL {
                        let present = scene.objects.iter().any(|o| o.colour == c && o.shape == s);
                        out.push((
                            format!("is there a {} {}?", c.name(), s.name()),
                            yes_no(present),
                        ));
                    }
                }
            }
            Family::IsThe => {
                for s in Shape::ALL {
                    if let Some(o) = scene.unique(|o| o.shape == s) {
                        for c in Colour::ALL {
                            out.push((
                                format!("is the {} {}?", s.name(), c.name()),
                                yes_no(o.colour == c),
                            ));
                        }
                    }
                }
            }
            Family::HowMany => {
                for s in Shape::ALL {
                    let n = scene.count_shape(s);
                    if n <= MAX_COUNT {
                        out.push((format!("how many {}s are there?", s.name()), count_name(n)));
                    }
                }
                for c in Colour::ALL {
                    let n = scene.count_colour(c);
                    if n <= MAX_COUNT {
                        out.push((
                            format!("how many {} objects are there?", c.name()),
                            count_name(n),
                        ));
                    }
                }
            }
            Family::WhatColor => {
                for s in Shape::ALL {
                    if let Some(o) = scene.unique(|o| o.shape == s) {
                        out.push((format!("what color is the {}?", s.name()), o.colour.name()));
                        continue;
                    }
                    for z in Size::ALL {
                        if let Some(o) = scene.unique(|o| o.shape == s && o.size == z) {
                            let q = format!("what color is the {} {}?", z.name(), s.name());
                            out.push((q, o.colour.name()));
                        }
                    }
                }
            }
            Family::WhatShape => {
                for c in Colour::ALL {
                    if let Some(o) = scene.unique(|o| o.colour == c) {
                        out.push((
                            format!("what shape is the {} object?", c.name()),
                            o.shape.name(),
                        ));
                    }
                }
            }
            Family::LeftOf => {
                for o in &scene.objects {
                    if scene
                        .unique(|x| x.colour == o.colour && x.shape == o.shape)
                        .is_none()
                    {
                        continue;
                    }
                    if let Some(l) = scene.unique(|x| x.row == o.row && x.col < o.col) {
                        let q = format!(
                            "what shape is left of the {} {}?",
                            o.colour.name(),
                            o.shape.name()
                        );
                        out.push((q, l.shape.name()));
                    }
                }
            }
        }
        out
    }
}

/// The digit answer for a count.
fn count_name(n: usize) -> &'static str {
    ["0", "1", "2", "3"][n.min(MAX_COUNT)]
}

/// Other spellings annotators use for an answer, all equal to it once normalised
/// ("two" for "2", "Yes." for "yes", "a circle" for "circle").
pub(crate) fn variants(answer: &str) -> Vec<String> {
    let number_word = match answer {
        "0" => Some("zero"),
        "1" => Some("one"),
        "2" => Some("two"),
        "3" => Some("three"),
        _ => None,
    };
    let mut capital = answer.to_string();
    if let Some(first) = capital.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let mut out = vec![capital, format!("{answer}.")];
    match number_word {
        Some(w) => out.push(w.to_string()),
        None if answer != "yes" && answer != "no" => out.push(format!("the {answer}")),
        None => out.push(format!("{answer}!")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::normalize_answer;
    use crate::rng::Rng;

    #[test]
    fn variants_normalise_to_the_answer() {
        for f in Family::ALL {
            for a in f.answers() {
                for v in variants(a) {
                    assert_eq!(normalize_answer(&v), a, "{v}");
                }
            }
        }
    }

    #[test]
    fn candidates_stay_in_the_answer_space() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let scene = Scene::random(&mut rng);
            for f in Family::ALL {
                let answers = f.answers();
                for (q, a) in f.candidates(&scene) {
                    assert!(answers.contains(&a), "{q} → {a}");
                    assert!(q.starts_with(f.question_type()), "{q}");
                }
            }
        }
    }
}
