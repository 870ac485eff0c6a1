#!/usr/bin/python3
# benchmarks/train_step_torch.py - PyTorch's CPU training step on the same
# model as benchmarks/bench_train_step.cpp: ResNet-18 (CIFAR stem, width w,
# 1 input channel, 28x28), projection head as the official SimCLR, NT-Xent,
# backward, LARS; channels-last (PyTorch then runs its convolutions through
# oneDNN). Prints one JSON line: {"views_per_s": ..., "step_ms": ..., ...}.
# Needs Debian's python3-torch (/usr/bin/python3); bench_train_step runs it.
#   /usr/bin/python3 benchmarks/train_step_torch.py --width 0.25 --views 512 --threads 2 --steps 10
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--width", type=float, default=0.25)
ap.add_argument("--views", type=int, default=512)
ap.add_argument("--size", type=int, default=28)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
C = [max(1, round(c * a.width)) for c in (64, 128, 256, 512)]


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, C[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(C[0])
        layers, cin = [], C[0]
        for i, c in enumerate(C):
            layers += [Block(cin, c, 1 if i == 0 else 2), Block(c, c, 1)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(C[3], C[3], bias=False), nn.BatchNorm1d(C[3]), nn.ReLU(),
                                  nn.Linear(C[3], 128, bias=False), nn.BatchNorm1d(128))

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def ntxent(z, tau=0.5):
    z = F.normalize(z, dim=1)
    s = z @ z.t() / tau
    s.fill_diagonal_(float("-inf"))
    v = z.shape[0]
    return F.cross_entropy(s, (torch.arange(v) + v // 2) % v)


net = Net().to(memory_format=torch.channels_last)
params = list(net.named_parameters())
mom = [torch.zeros_like(p) for _, p in params]
excl = [p.dim() == 1 for _, p in params]  # BN parameters (no biases elsewhere)
x = torch.randn(a.views, 1, a.size, a.size).to(memory_format=torch.channels_last)


def step(lr=0.1, wd=1e-6, eta=1e-3, m=0.9):
    for _, p in params:
        p.grad = None
    loss = ntxent(net(x))
    loss.backward()
    with torch.no_grad():
        for (n, p), v, e in zip(params, mom, excl):
            g = p.grad
            r = lr
            if not e:
                g = g + wd * p
                wn, gn = p.norm(), g.norm()
                if wn > 0 and gn > 0:
                    r = lr * (eta * wn / gn).item()
            v.mul_(m).add_(g, alpha=r)
            p.sub_(v)
    return loss.item()


for _ in range(a.warmup):
    step()
t0 = time.perf_counter()
for _ in range(a.steps):
    step()
dt = (time.perf_counter() - t0) / a.steps
print(json.dumps({"impl": "pytorch %s" % torch.__version__, "width": a.width, "views": a.views, "size": a.size,
                  "threads": a.threads, "steps": a.steps, "step_ms": 1000 * dt, "views_per_s": a.views / dt}))
