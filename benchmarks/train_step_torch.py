#!/usr/bin/python3
# benchmarks/train_step_torch.py - PyTorch's training step (CPU or CUDA) on the
# same model as benchmarks/bench_train_step.cpp: ResNet (torchvision layout, CIFAR
# or ImageNet stem, width multiplier, 1 or 3 input channels), the official
# SimCLR head (Linear-BN-ReLU-Linear-BN, the last BN without bias), NT-Xent
# (tau 0.5), backward, LARS (momentum 0.9, eta 0.001, weight decay 1e-6, BN
# parameters excluded); random inputs; channels-last (PyTorch then runs its
# convolutions through oneDNN on the CPU, cuDNN on a GPU). --device cuda runs on
# the GPU (timed between torch.cuda.synchronize() calls; LARS without host
# round trips); --amp runs forward and loss under bf16 autocast (PyTorch AMP:
# what a user would pick for speed; master weights fp32). Prints one JSON line:
#   {"views_per_s": ..., "step_ms": ..., "cpu_s_per_step": ..., ...}
# Needs torch for /usr/bin/python3: Debian's python3-torch, installed with apt
# when missing (--install; benchmarks/cpu_step_compare.sh passes it).
#   /usr/bin/python3 benchmarks/train_step_torch.py --width 0.25 --views 512 --threads 2 --steps 10
import argparse
import json
import os
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--depth", type=int, default=18, choices=[18, 34, 50, 101, 152])
ap.add_argument("--width", type=float, default=0.25)
ap.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"])
ap.add_argument("--channels", type=int, default=1, choices=[1, 3])
ap.add_argument("--size", type=int, default=28)
ap.add_argument("--views", type=int, default=512)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--device", default="cpu", help="cpu | cuda")
ap.add_argument("--amp", action="store_true", help="bf16 autocast for forward and loss")
ap.add_argument("--install", action="store_true", help="apt-get install python3-torch when torch is missing")
a = ap.parse_args()

try:
    import torch
except ImportError:
    if not a.install:
        sys.exit("torch is not installed for %s: apt-get install python3-torch (or pass --install)" % sys.executable)
    print("installing Debian's python3-torch (apt-get)...", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "python3-torch"], check=True, env=env,
                   stdout=sys.stderr)
    import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(a.threads)
torch.manual_seed(0)
W = [max(1, round(c * a.width)) for c in (64, 128, 256, 512)]
BOTTLENECK = a.depth >= 50
EXP = 4 if BOTTLENECK else 1
LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[a.depth]


class Basic(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.down = None
        if stride != 1 or cin != planes * 4:
            self.down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        if a.stem == "cifar":
            self.conv1 = nn.Conv2d(a.channels, W[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(a.channels, W[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(W[0])
        self.pool = nn.MaxPool2d(3, 2, 1) if a.stem == "imagenet" else nn.Identity()
        Block = Bottleneck if BOTTLENECK else Basic
        layers, cin = [], W[0]
        for i, (planes, n) in enumerate(zip(W, LAYERS)):
            for b in range(n):
                layers.append(Block(cin, planes, 2 if (i > 0 and b == 0) else 1))
                cin = planes * EXP
        self.layers = nn.Sequential(*layers)
        last_bn = nn.BatchNorm1d(128)
        last_bn.bias.requires_grad_(False)  # the official head's last BN has no bias
        self.head = nn.Sequential(nn.Linear(cin, cin, bias=False), nn.BatchNorm1d(cin), nn.ReLU(),
                                  nn.Linear(cin, 128, bias=False), last_bn)

    def forward(self, x):
        x = self.layers(self.pool(F.relu(self.bn1(self.conv1(x)))))
        return self.head(x.mean(dim=(2, 3)))


def ntxent(z, tau=0.5):
    z = F.normalize(z, dim=1)
    s = z @ z.t() / tau
    s.fill_diagonal_(float("-inf"))
    v = z.shape[0]
    return F.cross_entropy(s, (torch.arange(v, device=z.device) + v // 2) % v)


dev = torch.device(a.device)
cuda = dev.type == "cuda"
if cuda and not torch.cuda.is_available():
    sys.exit("--device cuda: torch.cuda.is_available() is False (torch %s)" % torch.__version__)
net = Net().to(dev).to(memory_format=torch.channels_last)
params = [p for p in net.parameters() if p.requires_grad]
mom = [torch.zeros_like(p) for p in params]
excl = [p.dim() == 1 for p in params]  # BN parameters (the model has no other biases)
x = torch.randn(a.views, a.channels, a.size, a.size, device=dev).to(memory_format=torch.channels_last)


def sync():
    if cuda:
        torch.cuda.synchronize()


def step(lr=0.1, wd=1e-6, eta=1e-3, m=0.9):
    for p in params:
        p.grad = None
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.amp):
        loss = ntxent(net(x).float())
    loss.backward()
    with torch.no_grad():
        for p, v, e in zip(params, mom, excl):
            g = p.grad
            if e:
                v.mul_(m).add_(g, alpha=lr)
            else:
                g = g + wd * p
                wn, gn = p.norm(), g.norm()
                # trust ratio on the device (no host round trip): eta |w| / |g| where both are > 0
                r = torch.where((wn > 0) & (gn > 0), eta * wn / gn, torch.ones_like(wn)) * lr
                v.mul_(m).add_(g * r)
            p.sub_(v)
    return loss


for _ in range(a.warmup):
    step()
sync()
c0, t0 = time.process_time(), time.perf_counter()
for _ in range(a.steps):
    loss = step()
sync()
loss = loss.item()
dt = (time.perf_counter() - t0) / a.steps
cpu = (time.process_time() - c0) / a.steps
print(json.dumps({"impl": "pytorch %s%s" % (torch.__version__, " amp-bf16" if a.amp else ""), "device": a.device, "depth": a.depth, "width": a.width, "views": a.views,
                  "size": a.size, "threads": a.threads, "steps": a.steps, "step_ms": round(1000 * dt, 3),
                  "views_per_s": round(a.views / dt, 3), "cpu_s_per_step": round(cpu, 4), "loss": round(loss, 6),
                  "mkldnn": torch.backends.mkldnn.is_available(),
                  "gpu": torch.cuda.get_device_name(0) if cuda else None}))
