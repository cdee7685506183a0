"""Which names an indicator may block: never a public suffix or a single label; a shared platform only by name."""
from __future__ import annotations

from publicsuffixlist import PublicSuffixList

_PSL = PublicSuffixList()  # the list bundled with the package, ICANN and private sections: no network at start

# Hosts whose pages belong to many unrelated users, told apart by the path: a URL there names one page, and
# blocking the host would block every user's. A domain indicator for one of them still blocks it (an explicit act).
SHARED_PLATFORMS = frozenset({
    "docs.google.com", "drive.google.com", "sites.google.com", "forms.gle", "github.com", "gitee.com",
    "onedrive.live.com", "1drv.ms", "www.dropbox.com", "dropbox.com",
    "mp.weixin.qq.com", "docs.qq.com", "wj.qq.com", "url.cn", "pan.baidu.com", "dwz.cn", "t.cn", "weibo.com",
    "www.kdocs.cn", "kdocs.cn", "shimo.im", "www.wjx.cn", "jinshuju.net", "v.douyin.com", "www.jianshu.com",
})


def too_wide(domain: str) -> str | None:
    """Why blocking a (normalised) domain would block far more than one site; None when it would not."""
    if "." not in domain:
        return f"{domain} is a single-label name"
    if _PSL.is_public(domain):
        return f"{domain} is a public suffix: blocking it blocks every site under it"
    return None


def shared_platform(host: str) -> bool:
    """True when a URL on `host` names one user's page of a platform many users share."""
    return host in SHARED_PLATFORMS
