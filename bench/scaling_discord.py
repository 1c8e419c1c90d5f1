"""The Discord side of ``bench.scaling``: the emulator (in the bench's own event loop; the
bots are other processes), servers split between the shards, and the questions asked by
/ask with what became of each: the answer's text and host, a failure notice, the status
lines the asker saw on the way.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.scaling_hosts import reply_text
from bench.streaming_child import shows_final
from tests.emulators.discord_server import DiscordEmulator, InteractionRecord, Message

FOOTER = re.compile(r"\n-# [^\n]*\Z")  # the footer line under a complete answer
# How the bot's status lines begin (bot.presentation.answer_text.status_line): shown alone
# before the text, or as a ``-# `` line under it.
STATUS_MARKS = ("⏳", "💭", "🔁", "🔀", "↪️", "🔧", "📚")
CURSOR = "▌"
ANSWERED, FAILED, UNFINISHED = "answered", "failed", "unfinished"


@dataclass(frozen=True)
class Conversation:
    """A channel, on the shard of its server; ``group``: the part of the bench it is for."""

    shard: int
    guild_id: int
    channel_id: int
    name: str
    group: str

    @property
    def session_id(self) -> str:
        return f"channel:{self.channel_id}"


@dataclass
class Question:
    qid: str
    prompt: str
    conversation: Conversation
    user_id: int
    record: InteractionRecord

    @property
    def asked_at(self) -> float:
        return self.record.dispatched_at

    @property
    def messages(self) -> list[Message]:
        rec = self.record
        return [rec.original, *rec.followups] if rec.original is not None else []


@dataclass
class Outcome:
    """What the asker ended up with."""

    kind: str  # ANSWERED, FAILED or UNFINISHED
    host: str | None = None  # who answered (named in the answer's text), or was cut off
    text: str = ""  # the answer without its footer, or the failure notice
    statuses: list[str] = field(default_factory=list)  # the status lines seen while waiting
    final_at: float | None = None
    pages: int = 0
    shown_words: int = 0  # FAILED: how many words of ``host``'s answer it kept


class DiscordSide:
    """The emulated Discord: ``servers`` servers per shard with ``members`` members each who
    take turns asking, and for each group ``channels[group]`` channels per shard, dealt over
    the shard's servers. Every channel is made before the bots connect."""

    def __init__(
        self,
        emu: DiscordEmulator,
        shards: int,
        servers: int,
        members: int,
        channels: Mapping[str, int],
    ) -> None:
        self.emu = emu
        self.conversations: list[Conversation] = []
        self._members: dict[int, list[int]] = {}
        self._numbers = itertools.count(1)
        self._turns = itertools.count()
        for shard in range(shards):
            guilds = []
            for s in range(servers):
                guild = emu.add_guild(f"shard{shard}-server{s}", shard=(shard, shards))
                guilds.append(guild.id)
                users = []
                for m in range(members):
                    user = emu.add_user(f"s{shard}g{s}m{m}")
                    emu.add_member(guild.id, user.id)
                    users.append(user.id)
                self._members[guild.id] = users
            for group, count in channels.items():
                for c in range(count):
                    guild_id = guilds[c % servers]
                    name = f"{group}-s{shard}-{c}"
                    channel = emu.add_channel(guild_id, name)
                    self.conversations.append(
                        Conversation(shard, guild_id, channel.id, name, group)
                    )

    def group(self, group: str, shard: int | None = None) -> list[Conversation]:
        """The group's conversations (on ``shard`` only, if given), alternating the shards."""
        mine = [c for c in self.conversations if c.group == group]
        if shard is not None:
            return [c for c in mine if c.shard == shard]
        by_shard = [[c for c in mine if c.shard == k] for k in sorted({c.shard for c in mine})]
        return [c for row in itertools.zip_longest(*by_shard) for c in row if c is not None]

    def serves_every_shard(self) -> bool:
        guilds = {c.shard: c.guild_id for c in self.conversations}
        return all(self.emu.gateway.serves(g) for g in guilds.values())

    def commands_registered(self) -> bool:
        return self.emu.world.find_command("ask", None) is not None

    async def ask(self, conversation: Conversation, words: str = "tell me something") -> Question:
        qid = f"q{next(self._numbers):04d}"
        prompt = f"{qid}: {words}"
        users = self._members[conversation.guild_id]
        user = users[next(self._turns) % len(users)]
        record = await self.emu.invoke_slash(
            "ask",
            user_id=user,
            channel_id=conversation.channel_id,
            guild_id=conversation.guild_id,
            options={"prompt": prompt},
        )
        return Question(qid, prompt, conversation, user, record)

    async def ask_all(self, conversations: Sequence[Conversation], count: int) -> list[Question]:
        """``count`` questions at once, dealt round-robin over ``conversations``."""
        return [await self.ask(conversations[i % len(conversations)]) for i in range(count)]

    async def wait_settled(self, questions: Sequence[Question], timeout: float) -> bool:  # noqa: ASYNC109
        """Until every question shows a final answer or notice; False if some never did."""
        try:
            await self.emu.wait_for(lambda: all(settled(q) for q in questions), timeout)
        except TimeoutError:
            return False
        return True

    def copies(self, qid: str) -> int:
        """How many messages anywhere show an answer to ``qid`` (one, or it was answered
        twice)."""
        needle = f" answers {qid} "
        return sum(
            1
            for message in self.emu.world.messages.values()
            if needle in message.content and not message.deleted
        )


def settled(question: Question) -> bool:
    return shows_final(question.messages)


def outcome(question: Question, hosts: Sequence[str], tokens: int) -> Outcome:
    """What ``question`` ended with; ANSWERED only if the text is exactly a host's reply."""
    messages = question.messages
    statuses = _statuses(messages)
    if not settled(question):
        shown = messages[-1].content if messages else "(nothing shown)"
        return Outcome(UNFINISHED, text=shown, statuses=statuses, pages=len(messages))
    final_at = max(m.edits[-1][0] for m in messages if m.edits)
    content = "\n".join(m.content for m in messages)
    body = FOOTER.sub("", content)
    for host in hosts:
        if body == reply_text(host, question.prompt, tokens):
            return Outcome(ANSWERED, host, body, statuses, final_at, len(messages))
    shown, _, notice = content.rpartition("\n")
    # Whose answer was cut, and how much of it the asker had seen.
    words = shown.strip().split()
    host = words[0] if len(words) > 2 and words[1] == "answers" else None
    return Outcome(
        FAILED, host, notice, statuses, final_at, len(messages), len(words) if host else 0
    )


def _statuses(messages: Sequence[Message]) -> list[str]:
    """The status lines (``-# ...`` under the text while it streams), each once, in order;
    the final footer is not one."""
    seen: dict[str, None] = {}
    for message in messages:
        for _, content in message.edits[:-1] if shows_final([message]) else message.edits:
            for line in content.splitlines():
                line = line.removeprefix("-# ").strip().rstrip(CURSOR).strip()
                if line.startswith(STATUS_MARKS):
                    seen.setdefault(line, None)
    return list(seen)
