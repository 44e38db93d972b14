import deepwise as dw
from deepwise import nn

dw.manual_seed(0)
x, y = dw.data.load_digits(split="train", as_images=True)        # (N, 1, 8, 8)
model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
trainer = dw.Trainer(model, optimizer=dw.optim.Adam(model.parameters(), 2e-3), metrics=["accuracy"])
history = trainer.fit(x, y, epochs=20, batch_size=32, validation_split=0.1, verbose=2,
                      callbacks=[dw.callbacks.EarlyStopping(patience=5, restore_best_weights=True)])
print(trainer.evaluate(*dw.data.load_digits(split="test", as_images=True)))
