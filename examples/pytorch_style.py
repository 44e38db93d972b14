import deepwise as dw
import deepwise.nn.functional as F
from deepwise import nn, optim

dw.manual_seed(0)
x_train, y_train = dw.data.load_digits(split="train")            # 1,437 real 8x8 digits, (N, 64)
x_test, y_test = dw.data.load_digits(split="test")
mean, std = x_train.mean(0), x_train.std(0) + 0.1                    # standardise with training statistics
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
loader = dw.data.DataLoader(dw.data.TensorDataset(x_train, y_train), batch_size=64, shuffle=True)

model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))
opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)

for _epoch in range(30):
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sched.step()

model.eval()
with dw.no_grad():
    accuracy = (model(dw.tensor(x_test)).argmax(dim=1) == dw.tensor(y_test)).float().mean().item()
print(f"test accuracy {accuracy:.3f}")
dw.save(model.state_dict(), "digits-mlp.safetensors")
