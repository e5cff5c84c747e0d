import { expect } from "chai";
import { expectedCompletionText, promptTokenCount, SIMULATED_WORDS, seedText } from "./simulated-text.js";

describe("simulated text", () => {
  const chat = [
    { role: "system", content: "Be brief." },
    {
      role: "user",
      content: [
        { type: "text", text: "first part" },
        { type: "text", text: "second" },
      ],
    },
    { role: "assistant", content: null },
  ];

  it("answers a function of the last user message, one known word per token", () => {
    expect(seedText(chat)).to.equal("first part\nsecond");
    const text = expectedCompletionText(chat, 8);
    expect(text).to.equal(expectedCompletionText("first part\nsecond", 8));
    const words = text.split(" ").slice(1);
    expect(words).to.have.length(8);
    for (const word of words) expect(SIMULATED_WORDS).to.include(word);
    expect(text[0], "a leading space").to.equal(" ");
  });

  it("extends a reply token by token, and gives other choices and prompts other words", () => {
    const three = expectedCompletionText("hello", 3);
    expect(expectedCompletionText("hello", 5).slice(0, three.length)).to.equal(three);
    expect(expectedCompletionText("hello", 12, 1)).to.not.equal(expectedCompletionText("hello", 12, 0));
    expect(expectedCompletionText("hello!", 12)).to.not.equal(expectedCompletionText("hello", 12));
    expect(expectedCompletionText("hello", 0)).to.equal("");
  });

  it("counts prompt tokens as whitespace-separated words over all messages", () => {
    expect(promptTokenCount("  one two\tthree\n")).to.equal(3);
    expect(promptTokenCount(chat)).to.equal(2 + 3);
    expect(promptTokenCount("")).to.equal(0);
  });
});
