// The variational autoencoder of PyTorch's VAE example (seed 001): 784-400
// encoder, two 20-d heads (mean, log-variance), reparameterisation, 20-400-784
// decoder with a sigmoid. Loss: binary cross-entropy summed over pixels plus
// the KL divergence, per image. Inputs stay in [0, 1].
#include <qlab/plugin/model.hpp>

namespace {

class Vae final : public qlab::Model {
 public:
  qlab::Schema options() const override {
    qlab::Schema s;
    s.integer("hidden", 400, "width of the encoder and decoder layers", 1, 100000)
        .integer("latent", 20, "dimensions of the latent code", 1, 10000);
    return s;
  }

  qlab::TrainRecipe default_recipe() const override {
    qlab::TrainRecipe r;  // the example's recipe
    r.optimizer = "adam";
    r.lr = 1e-3;
    r.batch_size = 128;
    r.epochs = 3;
    return r;
  }

  qlab::Task task() const override { return qlab::Task::reconstruct; }
  bool normalize_inputs() const override { return false; }

  qlab::Shape input_shape(const qlab::Shape& dataset, const qlab::Options&) const override {
    return dataset;
  }

  qlab::Graph build(const qlab::Options& o, const qlab::DataInfo& data) const override {
    const auto hidden = o.get<std::int64_t>("hidden"), latent = o.get<std::int64_t>("latent");
    std::int64_t pixels = 1;
    for (auto d : data.input) pixels *= d;
    qlab::Graph g("VAE");
    auto x = g.input("input", data.input);
    x = g.flatten("flatten", x);
    auto h = g.relu("relu1", g.linear("fc1", x, pixels, hidden));
    auto mu = g.linear("fc21", h, hidden, latent);
    auto logvar = g.linear("fc22", h, hidden, latent);
    auto z = g.reparameterize("reparameterize", mu, logvar);
    auto d = g.relu("relu3", g.linear("fc3", z, latent, hidden));
    auto recon = g.sigmoid("sigmoid", g.linear("fc4", d, hidden, pixels));
    for (const auto* f : {"flatten", "relu1", "relu3", "sigmoid"}) g.functional(f);
    g.set_outputs({recon, mu, logvar});
    return g;
  }

  torch::Tensor loss(const std::vector<torch::Tensor>& outputs, const torch::Tensor& images,
                     const torch::Tensor&) const override {
    const auto& recon = outputs.at(0);
    const auto& mu = outputs.at(1);
    const auto& logvar = outputs.at(2);
    const auto target = images.reshape({images.size(0), -1});
    const auto bce = torch::binary_cross_entropy(recon, target, {}, at::Reduction::Sum);
    const auto kld = -0.5 * torch::sum(1 + logvar - mu.pow(2) - logvar.exp());
    return (bce + kld) / static_cast<double>(images.size(0));
  }
};

}  // namespace

QLAB_PLUGIN(Vae, "model", "vae",
            "VAE of PyTorch's example (seed 001): 784-400-20(x2)-400-784, BCE + KLD")
