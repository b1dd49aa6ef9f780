"""The similarity check: renamed, recommented and respaced copies are found;
different answers are not."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import similarity  # noqa: E402

ANSWER = """
fn smooth_grad(model: &dyn ModuleT, x: &Tensor, targets: &[i64], n: usize, level: f64) -> Result<Tensor> {
    let mut out = Vec::new();
    for i in 0..targets.len() {
        let image = x.narrow(0, i as i64, 1); // one image
        let sigma = level * (image.max().double_value(&[]) - image.min().double_value(&[]));
        let mut sum = image.zeros_like();
        for _ in 0..n {
            sum += attribution::vanilla_gradient(model, &(&image + image.randn_like() * sigma), &targets[i..i + 1])?;
        }
        out.push(sum / n as f64);
    }
    Ok(Tensor::cat(&out, 0))
}
"""
COPY = """
// SmoothGrad
fn smoothed(net: &dyn ModuleT, batch: &Tensor, classes: &[i64], count: usize, noise: f64) -> Result<Tensor> {
    let mut maps = Vec::new();
    for k in 0..classes.len() {
        let img = batch.narrow(0, k as i64, 1);
        /* the noise's scale */ let s = noise * (img.max().double_value(&[]) - img.min().double_value(&[]));
        let mut acc = img.zeros_like();
        for _ in 0..count { acc += attribution::vanilla_gradient(net, &(&img + img.randn_like() * s), &classes[k..k + 1])?; }
        maps.push(acc / count as f64);
    }
    Ok(Tensor::cat(&maps, 0))
}
"""
OTHER = """
fn smooth_grad(model: &dyn ModuleT, x: &Tensor, targets: &[i64], n: usize, level: f64) -> Result<Tensor> {
    let lo = x.amin([1, 2, 3].as_slice(), true);
    let range = x.amax([1, 2, 3].as_slice(), true) - &lo;
    let noisy = x.repeat_interleave_self_int(n as i64, 0, None);
    let noise = noisy.randn_like() * range.repeat_interleave_self_int(n as i64, 0, None) * level;
    let t: Vec<i64> = targets.iter().flat_map(|&t| std::iter::repeat(t).take(n)).collect();
    let g = attribution::vanilla_gradient(model, &(noisy + noise), &t)?;
    Ok(g.view([targets.len() as i64, n as i64, 3, x.size()[2], x.size()[3]]).mean_dim(1, false, Kind::Float))
}
"""
STARTER = """
fn smooth_grad(model: &dyn ModuleT, x: &Tensor, targets: &[i64], n: usize, level: f64) -> Result<Tensor> {
    // YOUR CODE HERE
    todo!()
}
"""


def test_a_renamed_recommented_respaced_copy_is_found():
    pairs = similarity.similar_pairs({"alice": ANSWER, "bob": COPY, "carol": OTHER}, STARTER)
    assert [(a, b) for a, b, _ in pairs] == [("alice", "bob")]
    assert pairs[0][2] == 1.0


def test_different_answers_are_not_and_the_starter_does_not_count():
    a, b, s = similarity.highest_pair({"alice": ANSWER, "carol": OTHER}, STARTER)
    assert s < similarity.THRESHOLD
    # Two students who only wrote the starter share nothing that counts.
    assert similarity.similar_pairs({"x": STARTER, "y": STARTER}, STARTER) == []
    assert similarity.highest_pair({"x": ANSWER}) is None


def test_tokens_drop_comments_and_keep_structure():
    assert similarity.tokens("let a = 1; // x\nlet b = a + 2.5;") == \
        ["let", "v0", "=", "0", ";", "let", "v1", "=", "v0", "+", "0", ";"]
    assert similarity.tokens('/* c */ f("s", \'c\')') == ["v0", "(", '"s"', ",", '"s"', ")"]
