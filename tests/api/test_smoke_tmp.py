from __future__ import annotations

def test_smoke(client, auth, new_root):
    random_root = new_root
    r = client.get("/v1/health"); print(r.json()); assert r.status_code == 200
    r = client.post("/v1/datasets", json={"content_root": random_root(), "uri": "ipfs://x"}, headers=auth)
    print(r.status_code, r.json())
    did = r.json()["dataset"]["dataset_id"]
    r = client.get(f"/v1/datasets/{did}"); print(r.json())
    r = client.get("/v1/datasets"); print(r.json())
    r = client.post("/v1/grants", json={"dataset_id": did, "grantee": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "purpose": "ai-training", "expires_at": 2**40}, headers=auth)
    print(r.status_code, r.json())
    r = client.get("/v1/grants/check", params={"dataset_id": did, "grantee": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "purpose": "ai-training"}); print(r.json())
    r = client.post("/v1/grants/revoke", json={"dataset_id": did, "grantee": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "purpose": "ai-training"}, headers=auth)
    print(r.status_code, r.json())
    r = client.get("/v1/grants", params={"owner": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"}); print(r.json())
    r = client.post("/v1/datasets", json={"content_root": "0x"+"00"*31+"01"}, headers=auth); print(r.status_code, r.json())
    r = client.post("/v1/datasets", json={"content_root": "0x"+"00"*31+"01"}, headers=auth); print(r.status_code, r.json())
    r = client.get("/v1/jobs"); print(r.status_code, r.json())
