//! Scenes of the synthetic dataset: a few objects (shape × colour × size) placed in the
//! cells of a 3 × 3 grid with a little jitter, so "left of" and counting are unambiguous.

use crate::rng::Rng;

/// Grid cells per side.
pub(crate) const GRID: usize = 3;
/// Fewest and most objects in a scene.
pub(crate) const MIN_OBJECTS: usize = 3;
/// Most objects in a scene (also bounds the region count).
pub(crate) const MAX_OBJECTS: usize = 6;

/// Object shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}

impl Shape {
    pub(crate) const ALL: [Shape; 4] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Diamond => "diamond",
        }
    }
}

/// Object colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

impl Colour {
    pub(crate) const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
        }
    }

    pub(crate) fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 40, 40],
            Colour::Green => [50, 175, 60],
            Colour::Blue => [45, 90, 225],
            Colour::Yellow => [235, 210, 40],
            Colour::Purple => [150, 65, 195],
            Colour::Orange => [245, 135, 25],
        }
    }
}

/// Object sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Size {
    Small,
    Large,
}

impl Size {
    pub(crate) const ALL: [Size; 2] = [Size::Small, Size::Large];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }

    /// Radius as a fraction of the image side.
    pub(crate) fn radius(self) -> f32 {
        match self {
            Size::Small => 5.0 / 64.0,
            Size::Large => 8.0 / 64.0,
        }
    }
}

/// One object: its attributes, its grid cell and its centre (fractions of the side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Object {
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    pub row: usize,
    pub col: usize,
    pub cx: f32,
    pub cy: f32,
}

/// A scene: objects in reading order (by row, then column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scene {
    pub objects: Vec<Object>,
}

impl Scene {
    /// A random scene of 3 to 6 objects in distinct cells.
    pub(crate) fn random(rng: &mut Rng) -> Scene {
        let n = MIN_OBJECTS + rng.below(MAX_OBJECTS - MIN_OBJECTS + 1);
        let mut cells: Vec<usize> = (0..GRID * GRID).collect();
        for i in 0..n {
            let j = i + rng.below(cells.len() - i);
            cells.swap(i, j);
        }
        let mut chosen = cells[..n].to_vec();
        chosen.sort_unstable();
        let cell = 1.0 / GRID as f32;
        let objects = chosen
            .into_iter()
            .map(|c| {
                let (row, col) = (c / GRID, c % GRID);
                let jitter = |rng: &mut Rng| (rng.uniform() as f32 - 0.5) * 0.1 * cell;
                Object {
                    shape: Shape::ALL[rng.below(Shape::ALL.len())],
                    colour: Colour::ALL[rng.below(Colour::ALL.len())],
                    size: Size::ALL[rng.below(Size::ALL.len())],
                    row,
                    col,
                    cx: (col as f32 + 0.5) * cell + jitter(rng),
                    cy: (row as f32 + 0.5) * cell + jitter(rng),
                }
            })
            .collect();
        Scene { objects }
    }

    /// Objects with this shape.
    pub(crate) fn count_shape(&self, shape: Shape) -> usize {
        self.objects.iter().filter(|o| o.shape == shape).count()
    }

    /// Objects with this colour.
    pub(crate) fn count_colour(&self, colour: Colour) -> usize {
        self.objects.iter().filter(|o| o.colour == colour).count()
    }

    /// The only object matching `pred`, if exactly one does.
    pub(crate) fn unique(&self, pred: impl Fn(&Object) -> bool) -> Option<&Object> {
        let mut found = self.objects.iter().filter(|o| pred(o));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }
}
