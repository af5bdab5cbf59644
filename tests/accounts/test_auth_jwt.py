from datetime import timedelta

from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from tests.conftest import jwt_client
from tests.factories import PASSWORD

LOGIN, REFRESH, LOGOUT, ME = "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/auth/me"


def login(client, user):
    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_logs_in_and_the_access_token_works(anon, owner, org):
    tokens = login(anon, owner)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 15 * 60
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = anon.get(ME).json()
    assert me["user"]["username"] == "owner"
    assert me["organization"]["slug"] == org.slug
    assert me["role"] == "admin" and "keys:manage" in me["permissions"]
    assert me["auth_method"] == "jwt" and me["api_key"] is None


def test_it_refuses_a_wrong_password_with_401(anon, owner):
    response = anon.post(LOGIN, {"username": "owner", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "no_active_account"


def test_it_refuses_an_inactive_user(anon, owner):
    owner.is_active = False
    owner.save()
    assert anon.post(LOGIN, {"username": "owner", "password": PASSWORD}, format="json").status_code == 401


def test_it_validates_login_fields(anon):
    response = anon.post(LOGIN, {"username": "owner"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"password": ["This field is required."]}


def test_it_rotates_refresh_tokens_and_blacklists_the_old_one(anon, owner):
    tokens = login(anon, owner)
    first = anon.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert first.status_code == 200
    assert first.json()["refresh"] != tokens["refresh"]
    again = anon.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_not_valid"
    assert anon.post(REFRESH, {"refresh": first.json()["refresh"]}, format="json").status_code == 200


def test_it_logs_out_by_blacklisting_the_refresh_token(anon, owner):
    tokens = login(anon, owner)
    assert anon.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json").status_code == 204
    response = anon.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 401
    assert anon.post(LOGOUT, {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_it_refuses_garbage_and_access_tokens_as_refresh_tokens(anon, owner):
    assert anon.post(REFRESH, {"refresh": "garbage"}, format="json").status_code == 401
    access = str(AccessToken.for_user(owner))
    assert anon.post(REFRESH, {"refresh": access}, format="json").status_code == 401


def test_blank_looking_credentials_are_401_not_400(anon):
    assert anon.post(REFRESH, {"refresh": "\f"}, format="json").status_code == 401
    assert anon.post(LOGOUT, {"refresh": " "}, format="json").status_code == 401
    response = anon.post(LOGIN, {"username": "\t", "password": " "}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_it_refuses_the_refresh_token_of_a_deleted_user_with_401(anon, owner):
    tokens = login(anon, owner)
    owner.delete()
    response = anon.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "token_not_valid"


def test_it_refuses_expired_access_tokens(anon, owner):
    token = AccessToken.for_user(owner)
    token.set_exp(lifetime=-timedelta(seconds=1))
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = anon.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_refresh_token_as_access_token(anon, owner):
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(owner)}")
    assert anon.get(ME).status_code == 401


def test_it_refuses_tokens_of_users_deactivated_since(as_owner, owner):
    owner.is_active = False
    owner.save()
    response = as_owner.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "user_inactive"


def test_it_picks_the_organization_named_in_x_organization(owner, other_org):
    from tests.factories import MembershipFactory

    MembershipFactory(user=owner, organization=other_org, role="viewer", is_default=False)
    assert jwt_client(owner).get(ME).json()["organization"]["slug"] == "acme"  # the default
    by_slug = jwt_client(owner, HTTP_X_ORGANIZATION="globex").get(ME).json()
    assert by_slug["organization"]["slug"] == "globex" and by_slug["role"] == "viewer"
    by_id = jwt_client(owner, HTTP_X_ORGANIZATION=str(other_org.id)).get(ME).json()
    assert by_id["organization"]["slug"] == "globex"


def test_it_answers_403_for_an_organization_the_user_is_not_in(owner, other_org):
    response = jwt_client(owner, HTTP_X_ORGANIZATION="globex").get(ME)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_member"


def test_it_answers_403_for_a_user_in_no_organization(db):
    from tests.factories import UserFactory

    response = jwt_client(UserFactory()).get(ME)
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "You are not a member of any organization."


def test_it_throttles_logins_per_ip(anon, owner, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "login": "2/hour"},
    }
    for _ in range(2):
        anon.post(LOGIN, {"username": "owner", "password": "wrong"}, format="json")
    response = anon.post(LOGIN, {"username": "owner", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
